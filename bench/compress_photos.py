"""Learned compression of photos: aekit's rate-distortion `ae` against JPEG and WebP, in one run.

Training: the photo bench's training photos (bench/photos.py: astronaut, camera, brick, ... ; random crops), one
`ae` on the resnet backbone per --lambdas value (`rate_lambda`: loss = bits + lambda * squared error; a code of 128
channels from lambda 600 on, else 64), each for --minutes. Test: the whole held-out photos chelsea, coffee, rocket
and retina (nothing of them seen in training or tuning), each compressed to an .aez file as `aekit compress RUN
photo.png` does (one code map for the whole photo) and decoded back, and again as `aekit compress --refine 100` does
(each photo's code fitted to it first: the same model, decoder and format). JPEG (4:2:0, qualities 5 to 95) and WebP
(qualities 0 to 100) through Pillow on the same photos. For each setting: bits per pixel of the real files, PSNR
(over all values of all photos), SSIM, and encode and decode seconds per megapixel, averaged over the photos; aekit
also prints the bits its entropy model expected beside the real file size. BD-rate (Bjontegaard: cubic fits of log
rate against quality, integrated over the shared quality range) of aekit against JPEG and WebP, on PSNR and on SSIM.
A negative BD-rate is the share of bytes saved at equal quality. The figure: PSNR against bits per pixel.

    python bench/compress_photos.py [--minutes 30] [--lambdas 10,80,800,8000] [--jobs 2] [--figure rd.png]

--keep DIR keeps the runs; a later run with the same --keep measures the finished ones again instead of training them.
--jobs N trains N compressors at a time (each still for --minutes, the threads shared), then measures them one by one.
--tune holds astronaut and stereo_motorcycle out of training and tests on them instead (bench/photos.py).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aekit.apps import compress
from aekit.metrics import image_psnr, mean_ssim
from aekit.run import open_run
from photos import TEST, TRAIN, VALIDATION, options, photo, test_photo, train

# the compressors' own options: the stages on 4x4 cells of pixels, the code at 1/8, colour jitter of the crops
# (validation photos, 5 minutes at lambda 300, each started from block PCA: 30.82 dB at 1.08 bpp, JPEG 31.70 dB at
# that rate; without the jitter 29.48 dB at 1.13 bpp; docs/benchmarks.md); the mean-scale hyperprior (5 minutes at
# lambda 150 and 600, codes fitted with --refine 100: 0.66 and 1.26 bpp at 30.21 and 33.34 dB; the scale hyperprior
# 0.71 and 1.32 bpp at 30.23 and 33.36 dB)
RD = {"patch": 4, "hidden": (96,), "latent_channels": 64, "batch_size": 16, "lr": 1e-3}
RD.update(entropy="meanscale", color_jitter=0.5)
REFINE = 100  # steps of compress --refine (validation, lambda 300: +1.03 dB over JPEG at its rate, -0.53 without)
# 0.1 to 1.5 bpp on the test photos, the range aimed at: lambda 10, 60, 400, 3000 and 8000 gave 0.06, 0.13, 0.37, 1.05
# and 1.57 there (the test runs of 2026-11-27; rate about lambda^0.5); four, a factor of 10 apart, fit two at a time
# (--jobs 2) in an hour of training
LAMBDAS = (10.0, 80.0, 800.0, 8000.0)
WIDE_CODE = 600.0  # from this lambda on, a code of 128 channels: 64 bind the top of the range (docs/benchmarks.md)
JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def measure(photos: list[np.ndarray], code, decode) -> dict:
    """A codec over the photos: code(image (H, W, 3) uint8) -> bytes, decode(bytes) -> (H, W, 3) uint8. Bits per
    pixel over all photos, PSNR over all their values, mean SSIM, seconds per megapixel each way."""
    sizes, outs, t_code, t_decode = [], [], 0.0, 0.0
    for image in photos:
        start = time.perf_counter()
        blob = code(image)
        t_code += time.perf_counter() - start
        start = time.perf_counter()
        outs.append(decode(blob))
        t_decode += time.perf_counter() - start
        sizes.append(len(blob))
    pixels = sum(p.shape[0] * p.shape[1] for p in photos)
    clean = [as_tensor(p).float() / 255 for p in photos]
    back = [as_tensor(o).float() / 255 for o in outs]
    return {
        "bpp": 8 * sum(sizes) / pixels,
        "psnr": image_psnr(clean, back),
        "ssim": mean_ssim(clean, back),
        "code_s_mp": t_code / pixels * 1e6,
        "decode_s_mp": t_decode / pixels * 1e6,
    }


def pillow(fmt: str, quality: int):
    def code(image: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, fmt, quality=quality)
        return buf.getvalue()

    return code, lambda blob: np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def aekit_codec(run, expected: list, refine: int = 0):
    def code(image: np.ndarray) -> bytes:
        blob, bits = compress._compress_learned(run, [as_tensor(image)], run.scaling, refine)
        expected.append((bits / 8, len(compress._payload(blob))))
        return blob

    def decode(blob: bytes) -> np.ndarray:
        image = compress.decompress(blob, run)[0][0]
        return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    return code, decode


def settings(value: float, given: list[str]) -> dict:
    """The ae's options for rate_lambda value (RD, a wider code from WIDE_CODE on, then --set's)."""
    wide = {"latent_channels": 128} if value >= WIDE_CODE else {}
    return {**RD, **wide, **options(given), "rate_lambda": value}


def train_job(job: tuple):
    folder, model, out, minutes, epochs, opts = job
    return train(folder, model, out, minutes, epochs, **opts)


def side_by_side(jobs: list[tuple], processes: int) -> None:
    """train_job of each job, in that many processes at once, the threads divided among them. Each compressor
    still trains for --minutes of wall time, on a share of the cores: fewer epochs than alone, but where one
    process does not use its threads fully (small convolutions on 2 cores), more epochs in all."""
    threads = max(1, torch.get_num_threads() // processes)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, context, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        list(pool.map(train_job, jobs))


def finished(out: Path):
    """The run in out if it trained all its epochs, else None."""
    if not (out / "model.safetensors").exists():
        return None
    run = open_run(out)
    return run if len(run.metrics.get("history", [])) == run.config["train"]["epochs"] else None


def kept(out: Path):
    """The finished run in out, kept by an earlier bench with the same --keep (one that stopped after training some
    lambdas, or trained with --jobs): measured rather than trained again; None if there is none."""
    run = finished(out)
    if run is None:
        return None
    history = run.metrics["history"]
    print(f"\nreused {out}: {len(history)} epochs, {sum(r['time_s'] for r in history) / 60:.1f} min of training")
    return run


def bd_rate(anchor: list[dict], test: list[dict], metric: str) -> float:
    """Bjontegaard delta rate of test against anchor (a share: -0.2 is 20% fewer bits at equal quality): log rate
    against quality interpolated piecewise (monotone cubic, PCHIP, as the later Bjontegaard recommendations do;
    the original single cubic fit swings between points where a curve flattens: on the 2026-11-28 run it gave the
    unfitted codes -60% against WebP, which is ahead of them at every rate), integrated over the shared range."""
    from scipy.interpolate import PchipInterpolator

    curves, spans = [], []
    for points in (anchor, test):
        q, r = np.array(sorted((p[metric], np.log(p["bpp"])) for p in points)).T
        curves.append(PchipInterpolator(q, r))
        spans.append((q.min(), q.max()))
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    if lo >= hi:
        return float("nan")
    integrals = [curve.integrate(lo, hi) for curve in curves]
    return float(np.exp((integrals[1] - integrals[0]) / (hi - lo)) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of each compressor (30)")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of filling --minutes")
    parser.add_argument("--lambdas", default=",".join(f"{v:g}" for v in LAMBDAS), help="rate_lambda values")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="an option of the ae")
    parser.add_argument("--figure", type=Path, help="write the rate-distortion figure there (PNG)")
    parser.add_argument("--keep", type=Path, help="keep the run folders there")
    parser.add_argument("--tune", action="store_true", help="test on VALIDATION, held out of the training photos")
    parser.add_argument("--refine", type=int, default=REFINE, help=f"steps of aekit compress --refine ({REFINE})")
    parser.add_argument("--jobs", type=int, default=1, help="train this many compressors at once, the threads shared")
    args = parser.parse_args()
    lambdas = [float(v) for v in args.lambdas.split(",")]
    tests = VALIDATION if args.tune else TEST
    photos = [test_photo(n) for n in tests]
    torch.manual_seed(0)
    results = {"JPEG": [measure(photos, *pillow("JPEG", q)) for q in JPEG_QUALITIES]}
    results["WebP"] = [measure(photos, *pillow("WEBP", q)) for q in WEBP_QUALITIES]
    refined = f"aekit, refine {args.refine}"
    results["aekit"], results[refined], labels, checks = [], [], [], []
    with tempfile.TemporaryDirectory() as name:
        root = args.keep or Path(name)
        folder = root / "train"
        folder.mkdir(parents=True, exist_ok=True)
        for photo_name in (n for n in TRAIN if n not in tests):
            Image.fromarray(photo(photo_name)).save(folder / f"{photo_name}.png")
        jobs = [(folder, "ae", root / f"rd-{v:g}", args.minutes, args.epochs, settings(v, args.set)) for v in lambdas]
        if args.jobs > 1:  # the unfinished ones trained side by side first, then measured below one at a time
            side_by_side([job for job in jobs if not finished(job[2])], args.jobs)
        for value, job in zip(lambdas, jobs, strict=True):
            run = kept(job[2]) or train_job(job)
            for codec, steps in (("aekit", 0), (refined, args.refine)):
                expected: list = []
                results[codec].append(measure(photos, *aekit_codec(run, expected, steps)))
                off = [c / e - 1 for e, c in expected]  # each photo's file against its estimate
                checks.append((sum(c for _, c in expected) / sum(e for e, _ in expected) - 1, max(off, key=abs)))
            labels.append(f"lambda {value:g}")
    pixels = sum(p.shape[0] * p.shape[1] for p in photos)
    print(f"\nheld-out photos: {', '.join(tests)} ({pixels / 1e6:.2f} megapixels)")
    print(f"{'codec':34} {'bpp':>7} {'PSNR':>8} {'SSIM':>7} {'code s/MP':>10} {'decode s/MP':>12}")
    qualities = {"JPEG": [f"q{q}" for q in JPEG_QUALITIES], "WebP": [f"q{q}" for q in WEBP_QUALITIES]}
    for codec, points in results.items():
        for label, r in zip(qualities.get(codec, labels), points, strict=True):
            print(
                f"{codec + ' ' + label:34} {r['bpp']:7.3f} {r['psnr']:6.2f}dB {r['ssim']:7.4f} {r['code_s_mp']:10.3f}"
                f" {r['decode_s_mp']:12.3f}"
            )
    runs = [f"{label}{' refined' * k}" for label in labels for k in (0, 1)]
    print("aekit: the coded bytes against what the entropy model expected, all photos (the photo furthest off): "
          + ", ".join(f"{label} {c:+.2%} ({w:+.2%})" for label, (c, w) in zip(runs, checks, strict=True)))  # fmt: skip
    for codec in ("aekit", refined):
        for anchor in ("JPEG", "WebP"):
            rates = [bd_rate(results[anchor], results[codec], m) for m in ("psnr", "ssim")]
            print(f"BD-rate of {codec} against {anchor}: {rates[0]:+.1%} (PSNR), {rates[1]:+.1%} (SSIM)")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        for codec, points in results.items():
            ax.plot([p["bpp"] for p in points], [p["psnr"] for p in points], "o-", label=codec, markersize=4)
        ax.set(xlabel="bits per pixel", ylabel="PSNR (dB)", xlim=(0, 2), title=f"held-out photos: {', '.join(tests)}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
    print(f"\nreproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
