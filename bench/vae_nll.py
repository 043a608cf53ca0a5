"""VAE on dynamically binarized MNIST: aekit against the peer library Pythae, same networks, same epochs.

Both train a VAE with one stochastic layer: encoder 784-512-256 (ReLU) to a 32-dimensional diagonal Gaussian
posterior, decoder 32-256-512-784 with a Bernoulli likelihood, Adam 1e-3 with a cosine decay (aekit per step
after a 5% warm-up; Pythae's CosineAnnealingLR per epoch), batch 128, every training batch binarized afresh.
aekit's prior is the VampPrior (--prior vamp, PSEUDO_INPUTS pseudo-inputs) by default and it trains for a time
budget (--minutes, epochs as they fit); Pythae's VAE (its N(0, I) prior) then trains as many epochs.
The test NLL is importance-sampled with k samples per image (Burda et al. 2016) on the 10k test images
binarized once with seed 0, the same binary test set for both, each library with its own estimator.
Targets (aekit): NLL at most 86 nats after a training run of at most 30 minutes on a 2-core CPU.
Published, one stochastic layer: Pythae's VAE reproduction 89.78; Burda et al. 2016's VAE 86.76 (3280 epochs);
Tomczak & Welling 2018's VampPrior (MLP) 85.57.

    pip install pythae                      # next to torch 2.13.0 (make bench does it)
    python bench/vae_nll.py                 # the acceptance run: 28 minutes of training, k=1000 (about 75 min)
    python bench/vae_nll.py --prior normal --epochs 150   # the N(0, I) prior for 150 epochs
    python bench/vae_nll.py --epochs 2 --k 10 --items 500   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import aekit
import mnist_run
import peer_pythae

HIDDEN, LATENT, BATCH, LR, PSEUDO_INPUTS = (512, 256), 32, 128, 1e-3, 100
TARGET_NLL, TARGET_MINUTES = 86.0, 30.0


def train_aekit(epochs: int | None, minutes: float, prior: str, pseudo: int, out: str) -> tuple[aekit.Run, float]:
    """aekit's vae, for epochs, else for minutes of epochs (the schedule spans those that fit)."""
    budget = {"epochs": epochs} if epochs else {"minutes": minutes}
    vamp = {"pseudo_inputs": pseudo} if prior == "vamp" else {}
    options = {"binarize": True, "hidden": HIDDEN, "latent_dim": LATENT, "batch_size": BATCH, "lr": LR, "prior": prior}
    return mnist_run.train("vae", out, **options, **budget, **vamp)


def train_pythae(epochs: int, train_x: torch.Tensor):
    """Pythae's VAE of the same sizes, trained on train_x binarized afresh each time an item is read."""
    from pythae.data.datasets import DatasetOutput

    class DynamicallyBinarized(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return DatasetOutput(data=torch.bernoulli(self.x[i]))

    torch.manual_seed(0)
    model = peer_pythae.vae(HIDDEN, LATENT)
    seconds = peer_pythae.train(model, DynamicallyBinarized(train_x), epochs, BATCH, LR)
    return model, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, help="train aekit for these epochs instead of --minutes")
    p.add_argument("--minutes", type=float, default=28.0, help="aekit's training budget (default 28)")
    p.add_argument("--prior", choices=("vamp", "normal"), default="vamp")
    p.add_argument("--pseudo-inputs", type=int, default=PSEUDO_INPUTS)
    p.add_argument("--k", type=int, default=1000, help="importance samples per test image")
    p.add_argument("--items", type=int, default=10000, help="test images to estimate the NLL on")
    p.add_argument("--out", default="runs/vae-binarized")
    p.add_argument("--skip-pythae", action="store_true")
    a = p.parse_args()

    splits = aekit.data.load("mnist")
    test_bin = torch.bernoulli(splits.test.floats()[: a.items], generator=torch.Generator().manual_seed(0))
    rows = []
    run, seconds = train_aekit(a.epochs, a.minutes, a.prior, a.pseudo_inputs, a.out)
    epochs = len(run.metrics["history"])
    start = time.perf_counter()
    nll = float(run.model.nll(test_bin, a.k, generator=torch.Generator().manual_seed(0)).mean())
    prior = f"VampPrior {a.pseudo_inputs}" if a.prior == "vamp" else "N(0, I)"
    rows.append((f"aekit vae, {prior}", seconds, nll, time.perf_counter() - start))
    if not a.skip_pythae:
        model, seconds = train_pythae(epochs, splits.train.floats())
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.no_grad():
            nll_p = -float(model.get_nll(test_bin, n_samples=a.k, batch_size=min(a.k, 500)))
        rows.append(("Pythae 0.1.2 VAE, N(0, I)", seconds, nll_p, time.perf_counter() - start))

    print(
        f"dynamically binarized MNIST, VAE 784-512-256-{LATENT}, Bernoulli, {epochs} epochs, batch {BATCH}; "
        f"NLL with k={a.k} on {a.items} test images"
    )
    print(f"{'model':28} {'train min':>9} {'NLL (nats)':>11} {'NLL eval min':>13}")
    for name, train_s, value, eval_s in rows:
        print(f"{name:28} {train_s / 60:9.1f} {value:11.2f} {eval_s / 60:13.1f}")
    print("published, one stochastic layer: Burda et al. 2016 VAE 86.76; Tomczak & Welling 2018 VampPrior (MLP) 85.57")
    ok = rows[0][2] <= TARGET_NLL and rows[0][1] / 60 <= TARGET_MINUTES
    print(f"aekit targets: NLL <= {TARGET_NLL} and training <= {TARGET_MINUTES:.0f} min: {'PASS' if ok else 'FAIL'}")
    print(
        "reproduce: python bench/vae_nll.py"
        + "".join(
            f" --{k.replace('_', '-')} {v}"
            for k, v in vars(a).items()
            if v != p.get_default(k) and k not in ("out", "skip_pythae")
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
