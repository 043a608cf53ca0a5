"""Denoising MNIST: denoising autoencoders against classical filters.

The MNIST test images get Gaussian noise of standard deviation 0.5, clipped to [0, 1] (seed 0, the same
noise for every method). PSNR is 10 log10(1 / MSE) with the MSE over the whole test set. Target: the
denoising autoencoder's output at least 20 dB.

    python bench/denoise.py
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import torch
from scipy import ndimage

import aekit
from aekit.data.noise import gaussian
from aekit.metrics import psnr

SIGMA = 0.5
MODELS = {  # label: options of aekit.train for the dae
    "dae mlp 784-128-64-32": {"epochs": 20, "lr": 3e-3},
    "dae conv 32-64-128, code 64": {"backbone": "conv", "latent_dim": 64, "epochs": 20, "batch_size": 128, "lr": 2e-3},
}


def main() -> int:
    clean = aekit.data.load("mnist").test.floats()
    noisy = gaussian(clean, SIGMA, torch.Generator().manual_seed(0))
    rows = {"noisy input": (noisy, None)}
    noisy_np = noisy.numpy()
    rows["median filter 3x3"] = (torch.from_numpy(ndimage.median_filter(noisy_np, size=(1, 1, 3, 3))), None)
    rows["gaussian blur sigma=1"] = (torch.from_numpy(ndimage.gaussian_filter(noisy_np, sigma=(0, 0, 1, 1))), None)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, options) in enumerate(MODELS.items()):
            start = time.perf_counter()
            run = aekit.train(
                "mnist",
                "dae",
                out=f"{tmp}/{i}",
                noise=["gaussian"],
                noise_sigma=SIGMA,
                schedule="cosine",
                seed=0,
                quiet=True,
                **options,
            )
            rows[label] = (run.model.reconstruct(noisy), time.perf_counter() - start)
    print(f"MNIST test set, Gaussian noise sigma={SIGMA} clipped to [0, 1]")
    print(f"{'method':30} {'MSE':>8} {'PSNR':>8} {'train s':>8}")
    for label, (output, seconds) in rows.items():
        mse = float((output - clean).pow(2).mean())
        shown = f"{seconds:8.0f}" if seconds is not None else ""
        print(f"{label:30} {mse:8.5f} {psnr(mse):6.2f}dB {shown}")
    best = max(psnr(float((rows[m][0] - clean).pow(2).mean())) for m in MODELS)
    print(f"best denoising autoencoder: {best:.2f} dB (target >= 20 dB: {'PASS' if best >= 20 else 'FAIL'})")
    print("reproduce: python bench/denoise.py")
    return 0 if best >= 20 else 1


if __name__ == "__main__":
    np.random.seed(0)
    sys.exit(main())
