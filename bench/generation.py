"""Generated MNIST digits scored: aekit's samplers against the peer library Pythae, same model sizes, one run.

Every model has the MLP 784-512-256 encoder (ReLU), a 16-number code and the mirrored decoder with a Bernoulli
likelihood on MNIST's [0, 1] pixels, trained with Adam 1e-3 and a cosine decay, batch 128, for the same epochs:
  aekit vae     its prior, and a mixture of 10 Gaussians fitted to the training codes afterwards (--sampler gmm)
  aekit ae      the plain autoencoder with the same mixture (it has no prior)
  Pythae VAE    its NormalSampler (the prior) and its GaussianMixtureSampler (10 Gaussians), Pythae's own trainer
Each draws 10,000 digits (seed 0), scored against MNIST's 10,000 test digits in the features of aekit's MNIST
classifier (aekit.quality: trained by aekit on MNIST's training digits, cached beside the data): the Frechet
distance (FD; lower is better) and precision/recall (Kynkaanniemi et al. 2019). The features are not Inception's:
the numbers compare with each other, not with published FIDs.
Then a conditional vae (--conditional, same sizes) draws 1,000 digits of each class with each sampler; the share
the classifier puts in the class asked for is printed for the worst class.
Targets: aekit's best FD at least 20% below Pythae's best; the conditional vae's worst class at least 95%.

    pip install pythae                  # next to torch 2.13.0 (make bench does it)
    python bench/generation.py          # about 15 minutes on 2 CPU cores
    python bench/generation.py --epochs 2 --items 1000   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import aekit
import mnist_run
import peer_pythae
from aekit import quality

HIDDEN, LATENT, BATCH, LR, COMPONENTS = (512, 256), 16, 128, 1e-3, 10
TARGET_GAIN, TARGET_CLASS = 0.20, 0.95


def train_aekit(kind: str, epochs: int, out: str, **options) -> tuple[aekit.Run, float]:
    return mnist_run.train(
        kind, out, hidden=HIDDEN, latent_dim=LATENT, epochs=epochs, batch_size=BATCH, lr=LR, **options
    )


def class_shares(run: aekit.Run, net: quality.DigitClassifier, sampler: str, n: int) -> list[float]:
    """For each class, the share of n digits the conditional run draws of it that net puts in that class."""
    return [
        float((net.predict(aekit.generate(run, n, sampler=sampler, label=k)) == k).float().mean()) for k in range(10)
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--items", type=int, default=10_000, help="digits drawn by each model and sampler")
    p.add_argument("--per-class", type=int, default=1000, help="digits of each class from the conditional vae")
    p.add_argument("--out", default="runs/generation")
    p.add_argument("--skip-pythae", action="store_true")
    a = p.parse_args()

    splits = aekit.data.load("mnist")
    real, train_x = splits.test.floats(), splits.train.floats()
    start = time.perf_counter()
    net = quality.classifier()
    net_s = time.perf_counter() - start
    accuracy = float((net.predict(real) == splits.test.y).float().mean())
    rows = []  # (model, sampler, train seconds, scores)

    def score(name: str, sampler: str, seconds: float, fake: torch.Tensor) -> None:
        rows.append((name, sampler, seconds, quality.sample_quality(fake, real, net)))
        print(f"  {name} {sampler}: {rows[-1][3]}", file=sys.stderr, flush=True)

    vae, seconds = train_aekit("vae", a.epochs, f"{a.out}/vae")
    for sampler in ("prior", "gmm"):
        score("aekit vae", sampler, seconds, aekit.generate(vae, a.items, sampler=sampler, components=COMPONENTS))
    ae, seconds = train_aekit("ae", a.epochs, f"{a.out}/ae")
    score("aekit ae", "gmm", seconds, aekit.generate(ae, a.items, sampler="gmm", components=COMPONENTS))
    if not a.skip_pythae:
        torch.manual_seed(0)
        model = peer_pythae.vae(HIDDEN, LATENT)
        seconds = peer_pythae.train(model, train_x, a.epochs, BATCH, LR)
        for sampler in ("normal", "gmm"):
            torch.manual_seed(0)
            score("Pythae VAE", sampler, seconds, peer_pythae.samples(model, a.items, sampler, train_x, COMPONENTS))
    cvae, cvae_s = train_aekit("vae", a.epochs, f"{a.out}/cvae", conditional=True)
    shares = {sampler: class_shares(cvae, net, sampler, a.per_class) for sampler in ("prior", "gmm")}

    print(
        f"MNIST, MLP 784-{HIDDEN[0]}-{HIDDEN[1]}-{LATENT}, Bernoulli, {a.epochs} epochs, batch {BATCH}; {a.items:,} "
        f"samples each against the {len(real):,} test digits, in the features of aekit's MNIST classifier "
        f"({accuracy:.2%} test accuracy, {net_s:.0f} s to train or read)"
    )
    print(f"{'model':12} {'sampler':8} {'train min':>9} {'FD':>8} {'precision':>9} {'recall':>7}")
    for name, sampler, seconds, s in rows:
        print(f"{name:12} {sampler:8} {seconds / 60:9.1f} {s['frechet']:8.2f} {s['precision']:9.3f} {s['recall']:7.3f}")
    print(f"conditional aekit vae ({cvae_s / 60:.1f} min), {a.per_class} digits of each class classified as it:")
    for sampler, values in shares.items():
        print(f"  {sampler:6} worst {min(values):.3f}  by class: {' '.join(f'{v:.3f}' for v in values)}")
    best = min(s["frechet"] for name, _, _, s in rows if name.startswith("aekit"))
    peers = [s["frechet"] for name, _, _, s in rows if not name.startswith("aekit")]
    ok = max(min(values) for values in shares.values()) >= TARGET_CLASS
    if peers:
        gain = 1 - best / min(peers)
        print(f"aekit's best FD {best:.2f} against Pythae's best {min(peers):.2f}: {gain:.0%} lower")
        ok = ok and gain >= TARGET_GAIN
    print(
        f"targets: FD {TARGET_GAIN:.0%} below Pythae's, every class >= {TARGET_CLASS:.0%}: {'PASS' if ok else 'FAIL'}"
    )
    print(
        "reproduce: python bench/generation.py"
        + "".join(
            f" --{k.replace('_', '-')} {v}"
            for k, v in (("epochs", a.epochs), ("items", a.items), ("per_class", a.per_class))
            if v != p.get_default(k)
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
