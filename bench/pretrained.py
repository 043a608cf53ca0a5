"""Train the models that ship with aekit (src/aekit/pretrained/), then measure them on photos none of them saw.

Training data: the photo bench's training photos (bench/photos.py TRAIN: 13 photos inside scikit-image's wheel,
the gray ones as RGB), written as PNG files; nothing is downloaded. Measured on its held-out photos (TEST:
chelsea, coffee, rocket, retina), which no shipped model sees in training or tuning. Each model folder keeps
what its uses read (config.json, model.safetensors) and metrics.json with a "shipped" section: the figures, the
machine, how long it trained.

  photo-denoiser  a blind denoiser: a resnet `dae` with U-Net skips trained on fresh 64x64 crops with Gaussian
                  noise whose sigma is drawn for each crop from [5, 50] (of 255), so that it removes noise of a
                  strength nobody tells it. Measured at sigma 15, 25 and 50, not given to it, against non-local
                  means (at each) and BM3D (at 25: minutes a megapixel), both given the sigma (the photo bench's
                  settings).

    python bench/pretrained.py [--minutes 30] [--models photo-denoiser] [--out src/aekit/pretrained]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aekit
from aekit import pretrained
from photos import SIGMAS, TEST, TRAIN, denoisers, photo, psnr, ssim_of, test_photo

BM3D_SIGMA = 25  # BM3D (minutes a megapixel) is measured at this sigma only
KEPT = ("config.json", "model.safetensors")  # what a shipped model's uses read; metrics.json is written here
DENOISER = {  # the photo bench's dae (bench/photos.py BASE), blind: a sigma per crop from [5, 50] / 255
    "backbone": "resnet", "hidden": (32, 64), "latent_channels": 4, "skips": True, "noise": ("gaussian",),
    "noise_sigma": 5 / 255, "noise_sigma_max": 50 / 255, "crop": (64, 64), "color_jitter": 0.5, "batch_size": 8,
    "lr": 2e-3, "schedule": "cosine", "test_split": 0.0,
}  # fmt: skip


def machine() -> str:
    """The CPU and its threads, or the GPU, that trained a model."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def measure_denoiser(run) -> dict:
    """PSNR / SSIM on the test photos at each sigma (seeded noise, not given to the model) beside NLM and BM3D
    given the sigma: {"sigma 15": {"dae": [psnr, ssim], "NLM": [...], "BM3D": [...], "noisy": [...]}, ...}."""
    methods = denoisers(run)
    rng = np.random.default_rng(0)
    clean = [test_photo(name) / 255.0 for name in TEST]
    table = {}
    print(
        f"{'sigma':>5} "
        + " ".join(f"{m:>14}" for m in ["noisy", *methods])
        + "   (PSNR dB, SSIM: mean of the test photos)"
    )
    for sigma in SIGMAS:
        noisy = [np.clip(c + rng.normal(0, sigma / 255, c.shape), 0, 1) for c in clean]
        row = {"noisy": [np.mean([psnr(c, n, 1.0) for c, n in zip(clean, noisy, strict=True)]),
                         np.mean([ssim_of(c, n) for c, n in zip(clean, noisy, strict=True)])]}  # fmt: skip
        for name, method in methods.items():
            if name == "BM3D" and sigma != BM3D_SIGMA:  # minutes a megapixel: the one sigma the target names
                continue
            outs = [np.clip(method(n, sigma / 255), 0, 1) for n in noisy]
            row[name] = [float(np.mean([psnr(c, o, 1.0) for c, o in zip(clean, outs, strict=True)])),
                         float(np.mean([ssim_of(c, o) for c, o in zip(clean, outs, strict=True)]))]  # fmt: skip
        table[f"sigma {sigma}"] = {k: [round(float(v[0]), 2), round(float(v[1]), 4)] for k, v in row.items()}
        print(f"{sigma:>5} " + " ".join(f"{p:8.2f} {q:5.3f}" for p, q in row.values()))
    return table


def train_denoiser(folder: Path, tmp: Path, minutes: float):
    start = time.perf_counter()
    run = aekit.train(folder, "dae", out=tmp / "photo-denoiser", minutes=minutes, quiet=True, **DENOISER)
    took = (time.perf_counter() - start) / 60
    table = measure_denoiser(run)
    cells = []
    for s in SIGMAS:
        row = table[f"sigma {s}"]
        bm3d = f", BM3D {row['BM3D'][0]:.2f}" if "BM3D" in row else ""
        cells.append(f"sigma {s}: {row['dae'][0]:.2f} dB (NLM {row['NLM'][0]:.2f}{bm3d})")
    summary = "; ".join(cells) + " (PSNR on 4 photos; NLM and BM3D are told the sigma)"
    return run, {
        "summary": f"held-out photos, sigma not told: {summary}",
        "test_photos": list(TEST),
        "train_photos": list(TRAIN),
        "psnr_ssim": table,
        "trained": f"{took:.1f} min on {machine()} ({len(run.metrics['history'])} epochs)",
        "command": f"python bench/pretrained.py --minutes {minutes:g} --models photo-denoiser",
    }


MODELS = {"photo-denoiser": train_denoiser}


def ship(run, figures: dict, out: Path) -> None:
    """The run's KEPT files and a metrics.json of its figures, into out/NAME (replacing what was there)."""
    target = out / run.path.name
    staged = out / f".{run.path.name}.new"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in KEPT:
        shutil.copy2(run.path / name, staged / name)
    (staged / "metrics.json").write_text(json.dumps({"shipped": figures}, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staged.rename(target)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"shipped {target} ({size:.1f} MB): {figures['summary']}\n  trained {figures['trained']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of each model (default 30)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"which, of {','.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=pretrained.FOLDER, help="where the model folders go")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folder = tmp / "train"
        folder.mkdir()
        for photo_name in TRAIN:
            Image.fromarray(photo(photo_name)).save(folder / f"{photo_name}.png")
        for model in args.models.split(","):
            run, figures = MODELS[model](folder, tmp, args.minutes)
            ship(run, figures, args.out)
    print(f"\nreproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
