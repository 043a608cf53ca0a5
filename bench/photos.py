"""Real photos (issue 13), part 1: reconstruction of held-out photos by the resnet `ae` against block-wise PCA.

Data: the photos inside scikit-image's wheel (a bench-only dependency, installed by `make bench`). Training:
astronaut, camera, brick, grass, gravel, coins, hubble_deep_field, immunohistochemistry, stereo_motorcycle (left),
page, text, moon and clock (gray ones as RGB), written as PNG files and trained on with `crop=(64, 64)` (fresh
random crops each epoch). Test: the whole held-out photos chelsea, coffee, rocket and retina (each cut to a
multiple of 16 pixels, for the PCA blocks), reconstructed whole by the ae (in overlapping tiles); nothing of them
is seen in training or tuning.

The ae's code: 4 channels at a quarter of the size, 1/12 of the input's numbers. Baseline: PCA fitted on the
training crops' b x b blocks with b*b*3/12 components (the same share of numbers), applied to non-overlapping
blocks of the test photos, for b = 8 and 16.

    python bench/photos.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aekit

TRAIN = ["astronaut", "camera", "brick", "grass", "gravel", "coins", "hubble_deep_field", "immunohistochemistry"]
TRAIN += ["stereo_motorcycle", "page", "text", "moon", "clock"]
TEST = ["chelsea", "coffee", "rocket", "retina"]
TILE = 64


def photo(name: str) -> np.ndarray:
    """A scikit-image photo as (H, W, 3) uint8."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def crops_of(images: list[np.ndarray], per_image: int, seed: int = 0) -> np.ndarray:
    """Random TILE x TILE crops, per_image of each image: (N, TILE, TILE, 3) uint8 (what PCA is fitted on)."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        h, w = image.shape[:2]
        for _ in range(per_image):
            i, j = rng.integers(0, h - TILE + 1), rng.integers(0, w - TILE + 1)
            out.append(image[i : i + TILE, j : j + TILE])
    return np.stack(out)


def tiles(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size tiles of image cropped to a multiple of size: (N, size, size, 3)."""
    h, w = image.shape[0] // size * size, image.shape[1] // size * size
    t = image[:h, :w].reshape(h // size, size, w // size, size, 3).swapaxes(1, 2)
    return t.reshape(-1, size, size, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def pca_psnr(train_crops: np.ndarray, test: np.ndarray, block: int) -> float:
    """PSNR of test (H, W, 3) rebuilt block by block by PCA with block*block*3/12 components."""
    x = tiles_of_crops(train_crops, block).astype(np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[: block * block * 3 // 12]
    t = tiles(test, block).reshape(-1, block * block * 3).astype(np.float64)
    rebuilt = np.clip((t - mean) @ basis.T @ basis + mean, 0, 255)
    return psnr(tiles(test, block).reshape(len(t), -1), np.round(rebuilt))


def tiles_of_crops(train_crops: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([tiles(c, block).reshape(-1, block * block * 3) for c in train_crops])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    args = parser.parse_args()
    torch.manual_seed(0)
    train_photos = [photo(n) for n in TRAIN]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        folder.mkdir()
        for name, image in zip(TRAIN, train_photos, strict=True):
            Image.fromarray(image).save(folder / f"{name}.png")
        options = {"backbone": "resnet", "hidden": (32, 64), "latent_channels": 4, "batch_size": 16, "lr": 3e-3,
                   "crop": (TILE, TILE), "test_split": 0.0, "quiet": True}  # fmt: skip
        start = time.perf_counter()
        aekit.train(folder, "ae", out=Path(tmp) / "probe", epochs=2, **options)
        epoch_s = (time.perf_counter() - start) / 2  # two epochs: the first one's warm-up counts half
        epochs = max(1, int(args.minutes * 60 / epoch_s))
        start = time.perf_counter()
        run = aekit.train(folder, "ae", out=Path(tmp) / "run", epochs=epochs, schedule="cosine", **options)
        minutes = (time.perf_counter() - start) / 60
        crops = len(aekit.data.load(folder, crop=(TILE, TILE), test_split=0.0).train)
        print(f"training: {len(TRAIN)} photos, {crops} random {TILE}x{TILE} crops an epoch, resnet ae "
              f"{options['hidden']}, code 4 channels at 1/4 size (1/12 of the numbers), {epochs} epochs, "
              f"{minutes:.1f} min")  # fmt: skip
        train_crops = crops_of(train_photos, 100)
        print(f"{'photo':10} {'size':>11} {'ae':>8} {'PCA b=8':>8} {'PCA b=16':>9}")
        for name in TEST:
            test = photo(name)
            test = test[: test.shape[0] // 16 * 16, : test.shape[1] // 16 * 16]
            Image.fromarray(test).save(Path(tmp) / f"{name}.png")
            rebuilt = aekit.reconstruct(run, Path(tmp) / f"{name}.png")[0]
            ae = psnr(test, (rebuilt.permute(1, 2, 0).numpy() * 255).round())
            row = [ae, pca_psnr(train_crops, test, 8), pca_psnr(train_crops, test, 16)]
            print(f"{name:10} {test.shape[0]:>5}x{test.shape[1]:<5} " + " ".join(f"{v:8.2f}" for v in row))
    print(
        f"PSNR in dB, each photo cut to a multiple of 16; reproduce: python bench/photos.py --minutes {args.minutes:g}"
    )


if __name__ == "__main__":
    main()
