"""Real photos: the resnet backbone on held-out photos, against classical methods, in one run.

Data: the photos inside scikit-image's wheel (a bench-only dependency, installed by `make bench`). Training:
astronaut, camera, brick, grass, gravel, coins, hubble_deep_field, immunohistochemistry, stereo_motorcycle (left),
page, text, moon and clock (gray ones as RGB), written as PNG files and trained on with `crop=(64, 64)` (fresh
random crops each epoch, colours jittered). Test: the whole held-out photos chelsea, coffee, rocket and retina
(each cut to a multiple of 16 pixels, for the PCA blocks), used whole by aekit (in overlapping tiles); nothing of
them is seen in training or tuning. Parts (--parts, all by default):

  reconstruction  the `ae` (code: 4 channels at a quarter of the size, 1/12 of the input's numbers) against PCA
                  fitted on the training crops' b x b blocks with b*b*3/12 components (the same share of
                  numbers), applied to non-overlapping blocks of the test photos, for b = 8 and 16; the ae
                  both with the encoder's codes and with refined codes (--refine steps of Adam on the photo's
                  error, all its tiles' codes together, the decoder fixed: codes of the same size).
  denoising       Gaussian noise of sigma 15, 25 and 50 (of 255; clipped to [0, 1]; seeded) on the test photos:
                  the `dae` with U-Net skips trained at sigma 25 against scikit-image's non-local means (sigma
                  given; h = 0.6 sigma, 5x5 patches, distance 6, fast mode: the settings of its documentation's
                  example) and BM3D (the `bm3d` package, sigma given); PSNR, SSIM, seconds per megapixel.
  whole           `aekit denoise RUN photo.jpg -o clean.png` as a user runs it (a fresh process each time) on a
                  512x512 photo and on a generated 12-megapixel one: wall time and the process's peak memory.
  anomaly         a defect set from the test photos: a `dae` with U-Net skips trained for the minutes to
                  remove pasted anomalies (noise "paste": blobs and thin curves of another crop or of a flat
                  colour) from the normal data, scored by its reconstruction error on 96x96 test crops, half of
                  them with a defect pasted in (a patch of a training photo, a scratch or a blotch; masks known):
                  image and pixel AUROC, and the image AUROC of each photo's crops. Normal data and test crops
                  (--anomaly-split): "cells" (the default) the two colours of a checkerboard of 96x96 cells of
                  each photo, so that the test's normal content is drawn from the same parts of the photos as the
                  normal data; "halves" the top half of each photo and crops of its bottom half (normal content
                  the model never saw, such as a rocket's gantry, then counts against it too).

    python bench/photos.py [--minutes 30] [--parts reconstruction,denoising,whole,anomaly]

Tuning (--tune) never looks at the test photos: astronaut and stereo_motorcycle (two of the four colour photos
of the training set) leave the training set and take the test photos' place; the anomaly part then builds its
defect set from those two, immunohistochemistry and camera.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aekit
from aekit import plots
from aekit.apps.anomaly import anomaly_file, label_metrics
from aekit.metrics import ssim

TRAIN = ["astronaut", "camera", "brick", "grass", "gravel", "coins", "hubble_deep_field", "immunohistochemistry"]
TRAIN += ["stereo_motorcycle", "page", "text", "moon", "clock"]
TEST = ["chelsea", "coffee", "rocket", "retina"]
VALIDATION = ["astronaut", "stereo_motorcycle"]  # --tune: held out of TRAIN, in the place of TEST
ANOMALY_VALIDATION = [*VALIDATION, "immunohistochemistry", "camera"]  # --tune: the anomaly part's photos
TILE = 64
PARTS = ("reconstruction", "denoising", "whole", "anomaly")
SIGMAS = (15, 25, 50)
REFINE = 50  # steps of code refinement (aekit.reconstruct's refine) in the reconstruction part
DEFECT_CROPS = 24  # crops of each photo's test regions in the anomaly part's defect set, every other one defective
DEFECT_SIZE = 96  # their size (and of the cells of --anomaly-split cells)
FIGURE_CROP = 96  # the reconstruction figure shows this much of each photo's centre
# the anomaly part's dae: it learns to remove pasted anomalies (lr: 0.862 / 0.846 image / pixel AUROC on validation
# photos split in halves at 470 epochs, against 0.828 / 0.832 at 2e-3)
ANOMALY = {"noise": ("paste",), "skips": True, "lr": 4e-3}
BASE = {"backbone": "resnet", "hidden": (32, 64), "latent_channels": 4, "batch_size": 8, "lr": 2e-3,
        "schedule": "cosine", "crop": (TILE, TILE), "test_split": 0.0, "quiet": True}  # fmt: skip


def photo(name: str) -> np.ndarray:
    """A scikit-image photo as (H, W, 3) uint8."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def test_photo(name: str) -> np.ndarray:
    image = photo(name)
    return image[: image.shape[0] // 16 * 16, : image.shape[1] // 16 * 16]


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


def blocks(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size blocks of image cut to a multiple of size: (N, size*size*3)."""
    h, w = image.shape[0] // size * size, image.shape[1] // size * size
    t = image[:h, :w].reshape(h // size, size, w // size, size, 3).swapaxes(1, 2)
    return t.reshape(-1, size * size * 3)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak**2 / mse))


def ssim_of(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W, 3) images in [0, 1] (aekit.metrics.ssim, the same for every method)."""
    x, y = (torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))[None].double() for v in (a, b))
    return float(ssim(x, y)[0])


def pca_rebuilt(train_crops: np.ndarray, test: np.ndarray, block: int) -> np.ndarray:
    """test (H, W, 3), H and W multiples of block, rebuilt block by block by PCA with block*block*3/12 components
    fitted on the blocks of train_crops: (H, W, 3) uint8."""
    x = np.concatenate([blocks(c, block) for c in train_crops]).astype(np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[: block * block * 3 // 12]
    t = blocks(test, block).astype(np.float64)
    t = np.round(np.clip((t - mean) @ basis.T @ basis + mean, 0, 255)).astype(np.uint8)
    h, w = test.shape[0] // block, test.shape[1] // block
    return t.reshape(h, w, block, block, 3).swapaxes(1, 2).reshape(test.shape)


def train(folder: Path, model: str, out: Path, minutes: float, epochs: int | None, **options):
    """A run of model on folder's photos: epochs, or as many as fit in 90% of minutes, timed on the probe's later
    epochs (the first one warms up). The rest is for checkpoints after each epoch and epochs that grow slower:
    compressors given 97% took 30.9 to 32.5 minutes of 30 (docs/benchmarks.md)."""
    options = {**BASE, **options}
    if epochs is None:
        probe = aekit.train(folder, model, out=out.with_name(out.name + "-probe"), epochs=3, **options)
        seconds = np.mean([r["time_s"] for r in probe.metrics["history"][1:]])
        epochs = max(1, int(0.90 * minutes * 60 / seconds))
    start, cpu = time.perf_counter(), time.process_time()
    run = aekit.train(folder, model, out=out, epochs=epochs, **options)
    # the process's CPU time over its threads: below the wall time where other work or the host took the cores
    minutes, busy = (time.perf_counter() - start) / 60, (time.process_time() - cpu) / 60 / torch.get_num_threads()
    h, w = options["crop"]
    crops = len(aekit.data.load(folder, crop=(h, w), test_split=0.0).train)
    shown = ", ".join(f"{k} {v}" for k, v in options.items())
    print(
        f"\n{model}: {crops} random {h}x{w} crops an epoch, {epochs} epochs, {minutes:.1f} min "
        f"({busy:.1f} min of CPU time a thread); {shown}"
    )
    return run


def rebuilt(run, image: np.ndarray, refine: int = 0) -> np.ndarray:
    """What the run makes of an image (H, W, 3) in [0, 1] used whole: (H, W, 3) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
    return aekit.reconstruct(run, x, refine=refine)[0].permute(1, 2, 0).double().numpy()


def reconstruction(args, folder: Path, tmp: Path) -> None:
    if args.reuse:
        run = aekit.Run.open(args.reuse)
        print(f"\nae: the run {args.reuse} ({len(run.metrics['history'])} epochs), not trained again")
    else:
        run = train(folder, "ae", tmp / "ae", args.minutes, args.epochs, color_jitter=args.color_jitter, **args.shape)
    train_crops = crops_of([photo(n) for n in args.train], 100)
    refined = f"refined {args.refine}"
    print(f"{'photo':10} {'size':>11} {'ae':>8} {refined:>11} {'PCA b=8':>8} {'PCA b=16':>9}   (PSNR, dB)")
    seconds = megapixels = 0.0
    shown = [[] for _ in range(5)]
    for name in args.test:
        test = test_photo(name)
        made = [np.round(rebuilt(run, test / 255.0) * 255)]
        start = time.perf_counter()
        made.append(np.round(rebuilt(run, test / 255.0, args.refine) * 255))
        seconds, megapixels = seconds + time.perf_counter() - start, megapixels + test.shape[0] * test.shape[1] / 1e6
        made += [pca_rebuilt(train_crops, test, 8), pca_rebuilt(train_crops, test, 16)]
        row = [psnr(test, m) for m in made]
        h, w = test.shape[0] // 2 - FIGURE_CROP // 2, test.shape[1] // 2 - FIGURE_CROP // 2
        for k, image in enumerate([test, *made]):  # the figure: the photo's centre, each way
            shown[k].append(torch.from_numpy(image[h : h + FIGURE_CROP, w : w + FIGURE_CROP] / 255.0).permute(2, 0, 1))
        cells = " ".join(f"{v:{width}.2f}" for v, width in zip(row, (8, 11, 8, 9), strict=True))
        print(f"{name:10} {test.shape[0]:>5}x{test.shape[1]:<5} {cells}")
    rate = seconds / megapixels
    print(f"refined: the codes of all tiles of a photo fitted together to it by {args.refine} steps of Adam, the "
          f"decoder fixed ({rate:.0f} s/MP)")  # fmt: skip
    if args.figures:
        names = ["photo", "ae", refined, "PCA b=8", "PCA b=16"]
        title = "the held-out photos' centres, rebuilt from 1/12 of the numbers"
        figure = plots.rows_of_images([torch.stack(r) for r in shown], names, title=title)
        (args.figures / "photos_reconstruction.png").write_bytes(figure)


def nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image's non-local means of noisy (H, W, 3) in [0, 1], told the sigma (in [0, 1] units): the settings
    of its documentation's example."""
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(noisy, h=0.6 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                            channel_axis=-1)  # fmt: skip


def denoisers(run) -> dict:
    """name -> function (noisy (H, W, 3) in [0, 1], sigma in [0, 1] units) -> denoised."""
    import bm3d

    return {"dae": lambda noisy, sigma: rebuilt(run, noisy), "NLM": nlm,
            "BM3D": lambda noisy, sigma: bm3d.bm3d_rgb(noisy, sigma_psd=sigma)}  # fmt: skip


def train_dae(args, folder: Path, tmp: Path):
    return train(folder, "dae", tmp / "dae", args.minutes, args.epochs, color_jitter=args.color_jitter,
                 skips=True, noise=("gaussian",), noise_sigma=25 / 255)  # fmt: skip


def denoising(args, run) -> None:
    methods = denoisers(run)
    rng = np.random.default_rng(0)
    print(f"{'sigma':>5} {'method':6} " + " ".join(f"{n:>16}" for n in args.test) + f" {'mean':>16} {'s/MP':>6}")
    print(f"{'':12} " + " ".join(f"{'PSNR  SSIM':>16}" for _ in [*args.test, "mean"]))
    for sigma in SIGMAS:
        clean = [test_photo(n) / 255.0 for n in args.test]
        noisy = [np.clip(c + rng.normal(0, sigma / 255, c.shape), 0, 1) for c in clean]
        rows = {"noisy": [(psnr(c, n, 1.0), ssim_of(c, n)) for c, n in zip(clean, noisy, strict=True)]}
        seconds = {"noisy": 0.0}
        for name, method in methods.items():
            start, rows[name] = time.perf_counter(), []
            outs = [np.clip(method(n, sigma / 255), 0, 1) for n in noisy]
            seconds[name] = time.perf_counter() - start
            rows[name] = [(psnr(c, o, 1.0), ssim_of(c, o)) for c, o in zip(clean, outs, strict=True)]
        megapixels = sum(c.shape[0] * c.shape[1] for c in clean) / 1e6
        for name, row in rows.items():
            mean = np.mean(row, axis=0)
            cells = " ".join(f"{p:9.2f} {s:6.3f}" for p, s in [*row, mean])
            print(f"{sigma:>5} {name:6} {cells} {seconds[name] / megapixels:6.2f}")
    print("the dae was trained at sigma 25 only; at 15 and 50 it meets noise it was not trained for")


def peak_run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of a fresh process running command (measured from a small parent, so
    that the bench's own memory is not counted)."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    seconds, kilobytes = out.stdout.split()[-2:]
    return float(seconds), int(kilobytes) / 1024


def whole(args, run_dir: Path, tmp: Path) -> None:
    small = Image.fromarray(photo("coffee")).resize((512, 512), Image.BICUBIC)
    small.save(tmp / "photo512.jpg", quality=95)
    rng = np.random.default_rng(0)
    big = np.asarray(Image.fromarray(photo("chelsea")).resize((4000, 3000), Image.BICUBIC), dtype=np.float64)
    big = np.clip(big + rng.normal(0, 25, big.shape), 0, 255).astype(np.uint8)  # detail everywhere, as in a photo
    Image.fromarray(big).save(tmp / "photo12mp.png")
    aekit_cli = [sys.executable, "-m", "aekit", "denoise", str(run_dir)]
    threads = torch.get_num_threads()
    print(f"\nwhole photos: aekit denoise RUN PHOTO -o OUT.png, a fresh process each, on {threads} threads")
    times = [peak_run([*aekit_cli, str(tmp / "photo512.jpg"), "-o", str(tmp / f"out{i}.png")]) for i in range(3)]
    walls = [t for t, _ in times]
    peak = max(m for _, m in times)
    print(f"  512x512 JPEG: {min(walls):.2f} s (best of 3; median {np.median(walls):.2f}), peak {peak:.0f} MB")
    seconds, peak = peak_run([*aekit_cli, str(tmp / "photo12mp.png"), "-o", str(tmp / "out12mp.png")])
    print(f"  4000x3000 PNG (12 MP): {seconds:.1f} s, peak {peak:.0f} MB")


def defects(regions: list[np.ndarray], patches: list[np.ndarray], size: int, rng) -> tuple[list, list, list]:
    """size x size crops of one photo's test regions, every other one with a defect: (crops, masks, is_defective).
    One region (a half): DEFECT_CROPS crops anywhere in it; several (cells of size x size): up to DEFECT_CROPS
    of them, each whole, in a random order."""
    crops, masks, bad = [], [], []
    order = [0] * DEFECT_CROPS if len(regions) == 1 else rng.permutation(len(regions))[:DEFECT_CROPS]
    for k, which in enumerate(order):
        image = regions[which]
        h, w = image.shape[:2]
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = image[top : top + size, left : left + size].astype(np.float64).copy()
        mask = np.zeros((size, size), bool)
        if k % 2:
            kind = (k // 2) % 3
            rows, cols = np.mgrid[:size, :size]
            if kind == 0:  # a foreign patch
                p = patches[rng.integers(len(patches))]
                s = rng.integers(12, 24)
                i, j, pi, pj = *rng.integers(0, size - s, 2), *rng.integers(0, p.shape[0] - s, 2)
                crop[i : i + s, j : j + s] = p[pi : pi + s, pj : pj + s]
                mask[i : i + s, j : j + s] = True
            elif kind == 1:  # a scratch: a bright line two pixels wide
                a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
                t = np.clip(((rows - a[0]) * (b[0] - a[0]) + (cols - a[1]) * (b[1] - a[1]))
                            / ((b - a) ** 2).sum(), 0, 1)  # fmt: skip
                mask = np.hypot(rows - a[0] - t * (b[0] - a[0]), cols - a[1] - t * (b[1] - a[1])) < 1.0
                crop[mask] = 235
            else:  # a blotch: a soft stain of one colour
                c, r = rng.uniform(20, size - 20, 2), rng.uniform(5, 10)
                alpha = np.exp(-((rows - c[0]) ** 2 + (cols - c[1]) ** 2) / (2 * r**2))[..., None]
                crop = crop * (1 - 0.8 * alpha) + 0.8 * alpha * rng.uniform(0, 255, 3)
                mask = alpha[..., 0] > 0.2
        crops.append(np.round(crop).astype(np.uint8))
        masks.append(mask)
        bad.append(bool(k % 2))
    return crops, masks, bad


def split(image: np.ndarray, how: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A photo's normal images and its test regions: "halves" the top half and the bottom half; "cells" a
    checkerboard of DEFECT_SIZE cells, the cells of one colour normal, of the other the test's (the test's normal
    content then comes from the same parts of the photo as the normal data, interleaved)."""
    if how == "halves":
        half = image.shape[0] // 2
        return [image[:half]], [image[half:]]
    c = DEFECT_SIZE
    cells = {(i, j): image[i * c : (i + 1) * c, j * c : (j + 1) * c]
             for i in range(image.shape[0] // c) for j in range(image.shape[1] // c)}  # fmt: skip
    normal = [cell for (i, j), cell in cells.items() if (i + j) % 2 == 0]
    return normal, [cell for (i, j), cell in cells.items() if (i + j) % 2]


def anomaly(args, tmp: Path) -> None:
    normal, test = tmp / "normal", tmp / "defects"
    normal.mkdir()
    regions = {}
    for name in ANOMALY_VALIDATION if args.tune else args.test:
        images, regions[name] = split(test_photo(name), args.anomaly_split)
        for k, image in enumerate(images):
            Image.fromarray(image).save(normal / f"{name}-{k:03d}.png")
    options = {**ANOMALY, **args.anomaly_set}
    run = train(normal, "dae", tmp / "anomaly-dae", args.minutes, args.epochs, **options)
    patches, rng = [photo(n) for n in ("brick", "text", "coins")], np.random.default_rng(0)
    of_photo, defective = {}, 0
    for name, photo_regions in regions.items():
        crops, masks, bad = defects(photo_regions, patches, DEFECT_SIZE, rng)
        for k, (crop, mask, is_bad) in enumerate(zip(crops, masks, bad, strict=True)):
            kind, file = "abnormal" if is_bad else "good", f"{name}-{k:03d}.png"
            (test / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(test / kind / file)
            of_photo[file], defective = name, defective + is_bad
            if is_bad:
                (test / "masks" / kind).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(test / "masks" / kind / file)
    figure = args.figures / "photos_anomaly.png" if args.figures else None
    report = anomaly_file(
        run, str(test), normal=["good"], contamination=0.5, out=tmp / "scores.csv", figure=figure, force=True
    )
    where = "the bottom halves" if args.anomaly_split == "halves" else "the test cells"
    shown = f"{len(of_photo)} crops of 96x96 from {where}, {defective} with a defect"
    print(f"anomaly maps ({args.anomaly_split}): {shown}")
    print(
        f"  image AUROC {report['auroc']:.3f}, pixel AUROC {report['pixel_auroc']:.3f} (pixel AUPRC "
        f"{report['pixel_auprc']:.3f}; {report['pixel_anomalous_share']:.1%} of the pixels are defective)"
    )
    rows = list(csv.DictReader((tmp / "scores.csv").open()))
    for name in regions:
        mine = [r for r in rows if of_photo[Path(r["file"]).name] == name]
        scores, labels = np.array([float(r["score"]) for r in mine]), np.array([r["label"] != "good" for r in mine])
        print(f"  {name}: image AUROC {label_metrics(scores, labels)['auroc']:.3f} ({len(mine)} crops)")


def options(given: list[str]) -> dict:
    """KEY=JSON strings as keyword arguments of aekit.train (JSON lists as tuples)."""
    pairs = ((k, json.loads(v)) for k, v in (o.split("=", 1) for o in given))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of each model (default 30)")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of filling --minutes")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which parts, of {','.join(PARTS)}")
    parser.add_argument("--color-jitter", type=float, default=0.5, help="data.color_jitter of the crops (0.5)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="an option of the reconstruction ae (hidden=[16,32], lr=0.001, ...)")  # fmt: skip
    parser.add_argument("--anomaly-set", action="append", default=[], metavar="KEY=JSON",
                        help="an option of the anomaly part's dae (skips=false, ...)")  # fmt: skip
    parser.add_argument("--anomaly-split", choices=("halves", "cells"), default="cells",
                        help="the anomaly part's normal data and test regions of each photo (see split)")  # fmt: skip
    parser.add_argument("--refine", type=int, default=REFINE, help=f"steps of code refinement (default {REFINE})")
    parser.add_argument("--figures", type=Path, help="write the parts' figures there (photos_*.png)")
    parser.add_argument("--keep", type=Path, help="copy the run folders (and the defect set) there at the end")
    parser.add_argument("--reuse", type=Path, help="the reconstruction part measures this run (kept by --keep)")
    parser.add_argument("--tune", action="store_true", help="test on VALIDATION, held out of the training photos")
    args = parser.parse_args()
    args.test = VALIDATION if args.tune else TEST
    args.train = [n for n in TRAIN if n not in args.test]
    args.shape, args.anomaly_set = (options(given) for given in (args.set, args.anomaly_set))
    parts = args.parts.split(",")
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folder = tmp / "train"
        folder.mkdir()
        for photo_name in args.train:
            Image.fromarray(photo(photo_name)).save(folder / f"{photo_name}.png")
        if "reconstruction" in parts:
            reconstruction(args, folder, tmp)
        if "denoising" in parts or "whole" in parts:
            dae = train_dae(args, folder, tmp)
            if "denoising" in parts:
                denoising(args, dae)
            if "whole" in parts:
                whole(args, dae.path, tmp)
        if "anomaly" in parts:
            anomaly(args, tmp)
        if args.keep:
            shutil.copytree(tmp, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("train", "*-probe"))
    print(f"\nreproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
