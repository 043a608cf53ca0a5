"""Real photos (issue 13), part 1: reconstruction of held-out photos by the resnet `ae` against block-wise PCA.

Data: the photos inside scikit-image's wheel (a bench-only dependency, installed by `make bench`). Training:
random 64x64 crops of astronaut, camera, brick, grass, gravel, coins, hubble_deep_field, immunohistochemistry,
stereo_motorcycle (left), page, text, moon and clock (gray ones as RGB). Test: the whole held-out photos chelsea,
coffee, rocket and retina, cut into non-overlapping 64x64 tiles (the photo cropped to a multiple of 64); nothing
of them is seen in training or tuning.

The ae's code: 4 channels at a quarter of the size, 1/12 of the input's numbers. Baseline: PCA fitted on the
training crops' b x b blocks with b*b*3/12 components (the same share of numbers), applied to non-overlapping
blocks of the test photos, for b = 8 and 16.

    python bench/photos.py [--minutes 10] [--crops 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

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


def crops(images: list[np.ndarray], per_image: int, seed: int = 0) -> np.ndarray:
    """Random TILE x TILE crops, per_image of each image: (N, TILE, TILE, 3) uint8."""
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


def ae_psnr(run, test: np.ndarray) -> float:
    t = tiles(test, TILE)
    x = torch.from_numpy(t).permute(0, 3, 1, 2).float().div(255)
    x_hat = aekit.reconstruct(run, x)
    rebuilt = (x_hat.permute(0, 2, 3, 1).numpy() * 255).round()
    return psnr(t, rebuilt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    parser.add_argument("--crops", type=int, default=300, help="random crops per training photo (default 300)")
    args = parser.parse_args()
    torch.manual_seed(0)
    train_crops = crops([photo(n) for n in TRAIN], args.crops)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "crops.npy", train_crops)
        options = {"backbone": "resnet", "hidden": (32, 64), "latent_channels": 4, "batch_size": 16, "lr": 3e-3}
        start = time.perf_counter()
        probe = aekit.train(Path(tmp) / "crops.npy", "ae", out=Path(tmp) / "probe", epochs=1, quiet=True, **options)
        epoch_s = time.perf_counter() - start
        epochs = max(1, int(args.minutes * 60 / epoch_s))
        del probe
        start = time.perf_counter()
        run = aekit.train(Path(tmp) / "crops.npy", "ae", out=Path(tmp) / "run", epochs=epochs, schedule="cosine",
                          quiet=True, **options)  # fmt: skip
        minutes = (time.perf_counter() - start) / 60
        print(f"training: {len(train_crops)} crops of {TILE}x{TILE} from {len(TRAIN)} photos, resnet ae "
              f"{options['hidden']}, code {run.model.config.latent_dim} numbers (1/12), {epochs} epochs, "
              f"{minutes:.1f} min; its held-out crops: MSE {run.metrics['final']['test_mse']:.5f}")  # fmt: skip
        print(f"{'photo':10} {'size':>11} {'ae':>8} {'PCA b=8':>8} {'PCA b=16':>9}")
        for name in TEST:
            test = photo(name)
            row = [ae_psnr(run, test), pca_psnr(train_crops, test, 8), pca_psnr(train_crops, test, 16)]
            print(f"{name:10} {test.shape[0]:>5}x{test.shape[1]:<5} " + " ".join(f"{v:8.2f}" for v in row))
    print("PSNR in dB over each photo cropped to a multiple of 64; reproduce: python bench/photos.py")


if __name__ == "__main__":
    main()
