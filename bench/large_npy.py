"""Training on a .npy file larger than the memory it may use: peak resident memory against the file's size.

Writes a uint8 array of MNIST digits (each training image repeated, shifted by up to 2 pixels) of at least
--gb gigabytes, then trains the classic 784-128-64-32 `ae` on it for one epoch in a fresh process, which
memory-maps the file (files over $AEKIT_MMAP_BYTES, 1 GiB by default) and reads it a batch at a time.
Target: peak resident memory of the training process under 1 GB for a file of at least 2 GB.

    python bench/large_npy.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from aekit.limits import peak_memory_mb

TARGET_MB = 1000

TRAIN = """
import sys, time
import aekit
start = time.perf_counter()
run = aekit.train(sys.argv[1], "ae", out=sys.argv[2], force=True, quiet=True, hidden=[128, 64], latent_dim=32,
                  epochs=1, batch_size=256, device="cpu")
seconds = time.perf_counter() - start
from aekit.limits import peak_memory_mb
print(len(aekit.data.load(sys.argv[1]).train), run.metrics["final"]["test_mse"], seconds, int(peak_memory_mb()))
"""


def write_array(path: Path, gigabytes: float) -> int:
    """Write (N, 28, 28) uint8 shifted MNIST digits, N * 784 >= gigabytes * 1e9, in chunks; returns N."""
    import aekit

    digits = aekit.data.load("mnist").train.x.numpy()[:, 0]  # (60000, 28, 28) uint8
    n = int(np.ceil(gigabytes * 1e9 / 784 / len(digits))) * len(digits)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n, 28, 28)})
        for _ in range(n // len(digits)):
            dy, dx = rng.integers(-2, 3, size=2)
            f.write(np.roll(digits, (int(dy), int(dx)), axis=(1, 2)).tobytes())
    return n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.1, help="size of the array to write (default 2.1)")
    p.add_argument("--path", default="runs/large.npy", help="where to write it (deleted afterwards)")
    a = p.parse_args()
    path = Path(a.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        n = write_array(path, a.gb)
        size = path.stat().st_size
        print(f"wrote {path}: {n} images of 28x28 uint8, {size / 1e9:.2f} GB in {time.perf_counter() - start:.0f} s")
        done = subprocess.run(
            [sys.executable, "-c", TRAIN, str(path), "runs/large-npy"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        items, test_mse, seconds, peak_mb = done.stdout.split()
    finally:
        path.unlink(missing_ok=True)
    ok = int(peak_mb) < TARGET_MB and size >= 2e9
    print(
        f"one epoch over {items} training images ({float(seconds):.0f} s including the held-out evaluation), "
        f"test MSE {float(test_mse):.4f}"
    )
    print(
        f"peak resident memory of the training process: {peak_mb} MB for a {size / 1e9:.2f} GB file "
        f"(target < {TARGET_MB} MB): {'PASS' if ok else 'FAIL'}"
    )
    print(
        f"this script's own peak: {peak_memory_mb():.0f} MB; "
        f"AEKIT_MMAP_BYTES={os.environ.get('AEKIT_MMAP_BYTES', 'unset (1 GiB)')}"
    )
    print("reproduce: python bench/large_npy.py")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
