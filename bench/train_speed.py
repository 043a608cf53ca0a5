"""Speed and memory of aekit against the classic example's own pipeline: same model, same data, same epochs.

The classic pipeline is the seed example's, rewritten without torchvision (bench/classic.py): a per-sample
Dataset that makes a PIL image per item and converts it to a tensor (torchvision's MNIST + ToTensor, step
for step), a DataLoader with batch 256 and shuffle, nn.MSELoss, Adam 1e-3, then its test-and-plot step
(one figure). Normalize((0.5,), (0.5,)) is left out: it is the bug that stops the classic example from
learning, and leaving it out only makes the classic pipeline faster. Every pipeline trains the classic
784-128-64-32 MLP (with the classic's ReLU on the code) on the 60k training images.

  classic     the seed example's pipeline
  aekit       aekit.train() doing the same work: no per-epoch validation (test_split=0), but its per-epoch
              checkpoints and its two figures (loss curve, reconstructions) are included
  aekit+val   aekit.train() as `make demo` runs it: also a validation pass over the 10k test images
              after every epoch

Machines here are shared and noisy, so the pipelines run in worker processes that take turns, one epoch
each, and each one's time excludes its waits: drift hits all of them alike. One-time library imports
(torch, matplotlib, and torch._dynamo, which torch.optim imports on first use) are paid by every worker
before its clock starts. Each worker reports its own peak resident memory.

    python bench/train_speed.py                 # 20 epochs, the acceptance check (exit 1 if a target fails)
    python bench/train_speed.py --epochs 2      # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_RATIO = 4.0  # classic time / aekit time, same work
TARGET_PEAK_MB = 1536
WORKERS = ("classic", "aekit", "aekit+val")


class Turns:
    """Take turns with the other workers through the parent: say "ready", wait for "go"."""

    def __init__(self) -> None:
        self.waited = 0.0
        self.turns: list[float] = []  # how long each turn ran (about one epoch each)
        self.went = 0.0

    def start(self) -> float:
        """The first turn: returns its start time; waiting before it is not counted."""
        self.wait()
        self.waited, self.turns = 0.0, []
        return self.went

    def wait(self) -> None:
        start = time.perf_counter()
        self.turns.append(start - self.went)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        assert sys.stdin.readline().strip() == "go"
        self.went = time.perf_counter()
        self.waited += self.went - start

    def result(self, pipeline: str, start: float) -> dict:
        import torch

        from aekit.limits import peak_memory_mb

        self.turns.append(time.perf_counter() - self.went)
        return {
            "pipeline": pipeline,
            "seconds": time.perf_counter() - start - self.waited,
            "median_turn": statistics.median(self.turns),
            "peak_rss_mb": peak_memory_mb(),
            "threads": torch.get_num_threads(),
        }


def import_libraries() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch._dynamo  # noqa: F401


def worker_aekit(name: str, epochs: int, data_dir: str | None) -> dict:
    import aekit
    from aekit.trainer import Callback

    import_libraries()
    turns = Turns()

    class TakeTurns(Callback):
        def on_train_start(self, trainer):
            turns.wait()

        def on_epoch_end(self, trainer, record):
            if record["epoch"] < epochs:
                turns.wait()

    options = {} if name == "aekit+val" else {"test_split": 0.0}
    start = turns.start()
    with tempfile.TemporaryDirectory() as tmp:
        run = aekit.train(
            "mnist",
            "ae",
            out=f"{tmp}/run",
            epochs=epochs,
            latent_activation="relu",
            quiet=True,
            device="cpu",
            data_dir=data_dir,
            callbacks=[TakeTurns()],
            **options,
        )
        result = turns.result(name, start)
    test = aekit.data.load("mnist", data_dir=data_dir).test.floats()
    result["test_mse"] = float(((run.model.reconstruct(test) - test) ** 2).mean())
    return result


def worker_classic(name: str, epochs: int, data_dir: str | None) -> dict:
    import torch
    from torch.utils.data import DataLoader

    import classic

    import_libraries()
    import matplotlib.pyplot as plt

    turns = Turns()
    start = turns.start()
    torch.manual_seed(0)
    train_set, test_set = classic.datasets(data_dir)
    model = classic.Autoencoder()
    classic.train(model, DataLoader(train_set, batch_size=256, shuffle=True), epochs, between_epochs=turns.wait)
    # the seed's test-and-plot step: the first test batch through the same pipeline, original beside reconstruction
    model.eval()
    with torch.no_grad():
        img, _ = next(iter(DataLoader(test_set, batch_size=256, shuffle=False)))
        output = model(img.view(img.size(0), -1)).view(img.size(0), 1, 28, 28)
    fig, axes = plt.subplots(1, 2)
    axes[0].imshow(img[0].squeeze(), cmap="gray")
    axes[0].set_title("Original Image")
    axes[1].imshow(output[0].squeeze(), cmap="gray")
    axes[1].set_title("Reconstructed Image")
    with tempfile.TemporaryDirectory() as tmp:
        fig.savefig(f"{tmp}/classic.png")
    result = turns.result(name, start)
    with torch.no_grad():
        test = test_set.data.float().div(255).view(-1, 784)
        result["test_mse"] = float(((model(test) - test) ** 2).mean())
    return result


def run_workers(epochs: int, data_dir: str | None) -> dict[str, dict]:
    """Start every worker, then give each one turn in order until all have reported."""
    cmd = [sys.executable, __file__, "--epochs", str(epochs)] + (["--data-dir", data_dir] if data_dir else [])
    procs = {
        name: subprocess.Popen([*cmd, "--worker", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name in WORKERS
    }
    last = {name: proc.stdout.readline() for name, proc in procs.items()}  # "ready" once imports are done
    results: dict[str, dict] = {}
    while len(results) < len(procs):
        for name, proc in procs.items():
            if name in results:
                continue
            if last[name].strip() == "ready":
                proc.stdin.write("go\n")
                proc.stdin.flush()
                last[name] = proc.stdout.readline()  # blocks until this worker's turn is over
            elif last[name]:
                results[name] = json.loads(last[name])
            else:
                raise SystemExit(f"the {name} worker failed (exit {proc.wait()})")
    for proc in procs.values():
        proc.wait()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data-dir")
    p.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        fn = worker_classic if a.worker == "classic" else worker_aekit
        print(json.dumps(fn(a.worker, a.epochs, a.data_dir)), flush=True)
        return 0

    r = run_workers(a.epochs, a.data_dir)
    c = r["classic"]
    print(
        f"MNIST train 60k, classic 784-128-64-32 MLP, batch 256, Adam 1e-3, {a.epochs} epochs, {c['threads']} threads"
    )
    print(
        f"{'pipeline':10} {'seconds':>8} {'s/epoch':>8} {'median turn':>12} {'speed-up':>9} {'test MSE':>9} "
        f"{'peak RSS':>9}"
    )
    for name in WORKERS:
        w = r[name]
        print(
            f"{name:10} {w['seconds']:8.2f} {w['seconds'] / a.epochs:8.3f} {w['median_turn']:11.3f}s "
            f"{c['seconds'] / w['seconds']:8.2f}x {w['test_mse']:9.5f} {w['peak_rss_mb']:7.0f}MB"
        )
    ratio = c["seconds"] / r["aekit"]["seconds"]
    print(
        f"steady state (median turn, about one epoch): classic / aekit = "
        f"{c['median_turn'] / r['aekit']['median_turn']:.2f}x; a run whose total and median ratios disagree "
        "was disturbed by the machine"
    )
    peak = max(r[n]["peak_rss_mb"] for n in WORKERS if n != "classic")
    ok_speed, ok_mem = ratio >= TARGET_RATIO, peak <= TARGET_PEAK_MB
    print(
        f"same work: aekit is {ratio:.2f}x faster (target >= {TARGET_RATIO}x: {'PASS' if ok_speed else 'FAIL'}); "
        f"aekit peak memory {peak:.0f} MB (target <= {TARGET_PEAK_MB} MB: {'PASS' if ok_mem else 'FAIL'})"
    )
    print("reproduce: python bench/train_speed.py" + (f" --epochs {a.epochs}" if a.epochs != 20 else ""))
    return 0 if ok_speed and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
