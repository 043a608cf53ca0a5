"""What the README's own commands give on a user's kind of data, scored on photos they never saw.

Every photo command is read from README.md and run as written (a fresh `aekit` process, in a folder of the
bench's data, with the README's options), so the figures the README states beside them are what a user gets.
Test data: the photo bench's held-out photos (bench/photos.py TEST: chelsea, coffee, rocket, retina), each cut
to a multiple of 16 pixels; nothing of them is seen in training or in choosing the defaults (those were chosen
on crops of validation photos: --tune). Parts (--parts, all by default):

  crops   1,800 64x64 crops (900 each, seeded) of two photos (astronaut, immunohistochemistry) written as PNG
          files, then `aekit train crops --model ae --backbone resnet`: nothing but the defaults.
          Scored on 200 crops of each test photo: PSNR against 8x8 block PCA with 16 components (the code's
          numbers per pixel: 1/12) fitted on the training crops; the ae with its encoder's codes, and with each
          crop's code fitted to it for the README's --refine steps (the same decoder, codes of the same size).
  photos  a folder of whole photos (--photos: three of the photo bench's training photos), then the README's
          photo lines that train an `ae` and a `dae` (its "Photos of any size" section; the dae starts from the
          shipped photo-denoiser, as the README's line does). The test photos whole: the ae's reconstruction
          (its codes as they come, and fitted for the steps of the README's `--refine` line) against block PCA
          (16 per 8x8 block) fitted on the same photos; the dae on Gaussian noise of sigma 0.1 (seeded) against
          a 3x3 median filter and scikit-image's non-local means (sigma given; the photo bench's settings).

    python bench/readme.py [--parts crops,photos] [--photos astronaut,immunohistochemistry,stereo_motorcycle]

--tune scores the crops part on validation photos instead (stereo_motorcycle, hubble_deep_field, moon, coins:
none of them a test photo or a source of the training crops): what the resnet's defaults were chosen on.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import median_filter

import aekit
from photos import TEST, crops_of, nlm, pca_rebuilt, photo, psnr, test_photo

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("crops", "photos")
CROP_PHOTOS, CROPS_EACH, TEST_CROPS = ("astronaut", "immunohistochemistry"), 900, 200
VALIDATION = ("stereo_motorcycle", "hubble_deep_field", "moon", "coins")  # --tune: the crops part scores these
PHOTOS = ("astronaut", "immunohistochemistry", "stereo_motorcycle")
SIGMA = 0.1  # the noise the README's denoise line adds (--add-noise gaussian --noise-sigma 0.1)
CROPS_LINE = "aekit train crops --model ae --backbone resnet --out runs/crops-ae"  # the defaults alone


def readme_line(pattern: str) -> str:
    """The README's one command line that matches pattern (a regular expression), its comment cut off."""
    found = [line for line in (ROOT / "README.md").read_text().splitlines() if re.match(pattern, line)]
    if len(found) != 1:
        raise SystemExit(f"README.md: {len(found)} lines match {pattern!r}, expected one")
    return shlex.join(shlex.split(found[0], comments=True))


def refine_steps() -> int:
    """The steps of the README's line that rebuilds a photo with its codes fitted (`--refine N`)."""
    return int(re.search(r"--refine (\d+)", readme_line(r"aekit evaluate runs/photo-ae \S+ --refine"))[1])


def run_readme(line: str, cwd: Path) -> float:
    """Run one README command line in cwd with this environment's aekit; its wall time in minutes."""
    words = shlex.split(line)
    aekit_bin = Path(sys.executable).with_name("aekit")
    start = time.perf_counter()
    subprocess.run([str(aekit_bin), *words[1:], "--quiet", "--force"], cwd=cwd, check=True)
    minutes = (time.perf_counter() - start) / 60
    print(f"$ {line}\n  {minutes:.1f} min")
    return minutes


def as_batch(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) floats in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255


def as_pixels(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) uint8 (rounded, as a file holds them)."""
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def crops(tmp: Path, test_photos: tuple[str, ...]) -> None:
    folder = tmp / "crops"
    folder.mkdir()
    train = crops_of([photo(name) for name in CROP_PHOTOS], CROPS_EACH, seed=1)
    for i, crop in enumerate(train):
        Image.fromarray(crop).save(folder / f"{i:04d}.png")
    run_readme(CROPS_LINE, tmp)
    run = aekit.Run.open(tmp / "runs" / "crops-ae")
    steps = refine_steps()
    print(f"{'test photo':12} {'ae':>7} {'refined':>8} {'PCA 8x8':>8}   (PSNR of {TEST_CROPS} 64x64 crops, dB; "
          f"refined: codes fitted {steps} steps)")  # fmt: skip
    rows = []
    for name in test_photos:
        test = crops_of([test_photo(name)], TEST_CROPS, seed=2)
        made = as_pixels(aekit.reconstruct(run, as_batch(test)))
        fitted = as_pixels(aekit.reconstruct(run, as_batch(test), refine=steps))
        side_by_side = np.concatenate(list(test), axis=1)  # (64, 64 N, 3): the same 8x8 blocks, one PCA fit
        pca = np.stack(np.split(pca_rebuilt(train, side_by_side, 8), len(test), axis=1))
        rows.append((psnr(test, made), psnr(test, fitted), psnr(test, pca)))
        print(f"{name:12} " + " ".join(f"{v:8.2f}" for v in rows[-1]))
    print(f"{'mean':12} " + " ".join(f"{v:8.2f}" for v in np.mean(rows, axis=0)))


def _row(values) -> str:
    """The photos part's PSNRs: the ae's (codes as they come, fitted) and PCA's, then the noisy input's and the
    denoisers'."""
    return " ".join(f"{v:7.2f}" for v in values[:3]) + " | " + " ".join(f"{v:7.2f}" for v in values[3:])


def photos(tmp: Path, names: list[str]) -> None:
    folder = tmp / "photos"
    folder.mkdir()
    for name in names:
        Image.fromarray(photo(name)).save(folder / f"{name}.png")
    lines = {  # the two lines that train a model to rebuild photos and to remove Gaussian noise
        "ae": readme_line(r"aekit train photos --model ae (?!.*--rate-lambda)"),
        "dae": readme_line(r"aekit train photos --model dae (?!.*--noise paste)"),
    }
    runs = {}
    for kind, line in lines.items():
        run_readme(line, tmp)
        runs[kind] = aekit.Run.open(tmp / re.search(r"--out (\S+)", line)[1])
    train = [photo(name) for name in names]
    rng = np.random.default_rng(0)
    steps = refine_steps()
    print(f"{'test photo':12} {'ae':>7} {'refined':>7} {'PCA 8x8':>7} | {'noisy':>7} {'dae':>7} {'median':>7} "
          f"{'NLM':>7}   (PSNR, dB; refined: codes fitted {steps} steps)")  # fmt: skip
    rows = []
    for name in TEST:
        test = test_photo(name)
        made = as_pixels(aekit.reconstruct(runs["ae"], as_batch(test[None])))[0]
        fitted = as_pixels(aekit.reconstruct(runs["ae"], as_batch(test[None]), refine=steps))[0]
        clean = test / 255.0
        noisy = np.clip(clean + rng.normal(0, SIGMA, clean.shape), 0, 1)
        noisy_x = torch.from_numpy(noisy.transpose(2, 0, 1)).float()[None]
        denoised = aekit.denoise(runs["dae"], noisy_x)[0].permute(1, 2, 0).double().numpy()
        rows.append([
            psnr(test, made), psnr(test, fitted), psnr(test, pca_rebuilt(train, test, 8)), psnr(clean, noisy, 1.0),
            psnr(clean, denoised, 1.0), psnr(clean, median_filter(noisy, size=(3, 3, 1)), 1.0),
            psnr(clean, np.clip(nlm(noisy, SIGMA), 0, 1), 1.0),
        ])  # fmt: skip
        print(f"{name:12} {_row(rows[-1])}")
    print(f"{'mean':12} {_row(np.mean(rows, axis=0))}")
    print(f"training photos: {', '.join(names)}; the dae's noise: Gaussian, sigma {SIGMA} (of 1), clipped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which parts, of {','.join(PARTS)}")
    parser.add_argument("--photos", default=",".join(PHOTOS), help="the training photos of the photos part")
    parser.add_argument("--tune", action="store_true", help="the crops part scores the validation photos")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for part in args.parts.split(","):
            print(f"\n# {part}")
            if part == "crops":
                crops(tmp, VALIDATION if args.tune else TEST)
            elif part == "photos":
                photos(tmp, args.photos.split(","))
            else:
                raise SystemExit(f"unknown part {part!r}; the parts are {', '.join(PARTS)}")
    print(f"\nreproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
