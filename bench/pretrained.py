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
  photo-codec     a learned photo codec at four quality levels: for each, the photo bench's rate-distortion `ae`
                  (bench/compress_photos.py: a code of 64 or 128 channels at 1/8 of the size, the mean-scale
                  hyperprior, colour jitter) with its own rate_lambda (CODEC_LAMBDAS), two trained at a time, one
                  thread each, for --minutes each; stored as float16 (half the size), and measured so: bits per
                  pixel, PSNR and SSIM on the test photos beside JPEG and WebP at their qualities, BD-rate against
                  each, and a 512x512 photo (the middle of retina) coded and decoded in this process and with
                  `aekit compress` / `aekit decompress` in fresh processes (same file, same pixels).

    python bench/pretrained.py [--minutes 30] [--models photo-denoiser,photo-codec] [--out src/aekit/pretrained]

--keep DIR keeps the codec's runs there; a later run with the same --keep measures the finished ones instead of
training them again.
"""

from __future__ import annotations

import argparse
import json
import platform
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
from aekit import pretrained
from compress_photos import (
    JPEG_QUALITIES,
    WEBP_QUALITIES,
    aekit_codec,
    bd_rate,
    finished,
    kept,
    measure,
    pillow,
    settings,
    side_by_side,
)
from photos import SIGMAS, TEST, TRAIN, denoisers, photo, psnr, ssim_of, test_photo

BM3D_SIGMA = 25  # BM3D (minutes a megapixel) is measured at this sigma only
KEPT = ("config.json", "model.safetensors")  # what a shipped model's uses read; metrics.json is written here
DENOISER = {  # the photo bench's dae (bench/photos.py BASE), blind: a sigma per crop from [5, 50] / 255
    "backbone": "resnet", "hidden": (32, 64), "latent_channels": 4, "skips": True, "noise": ("gaussian",),
    "noise_sigma": 5 / 255, "noise_sigma_max": 50 / 255, "crop": (64, 64), "color_jitter": 0.5, "batch_size": 8,
    "lr": 2e-3, "schedule": "cosine", "test_split": 0.0,
}  # fmt: skip


# photo-codec: one compressor per quality level (1 the fewest bytes), the photo bench's rate-distortion `ae`
# (bench/compress_photos.py RD, a code of 128 channels from lambda 600 on); lambdas a factor of 4 apart, from the
# rates of its 30-minute runs (lambda 10 / 80 / 800: 0.06 / 0.15 / 0.58 bpp on photos): about 0.06 to 0.5 bpp,
# the range where its codes (not fitted to each photo) compete with JPEG; four trained two at a time in an hour
CODEC_LAMBDAS = (10.0, 40.0, 160.0, 640.0)


def halved(run, folder: Path):
    """A copy of the run in folder with its float32 weights stored as float16 (half the bytes; aekit widens them
    when it loads them), opened: what ships, and so what is measured. A tensor that float16 cannot hold (values
    past its range) stays float32."""
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.json"):
        shutil.copy2(run.path / name, folder / name)
    tensors = load_file(run.path / "model.safetensors")
    narrow = {k for k, v in tensors.items() if v.dtype == torch.float32 and torch.isfinite(v.half()).all()}
    save_file({k: v.half() if k in narrow else v for k, v in tensors.items()}, folder / "model.safetensors")
    return aekit.Run.open(folder)


def machine(threads: int | None = None) -> str:
    """The CPU and the threads a model trained with (default this process's), or the GPU that trained it."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    threads = threads or torch.get_num_threads()
    return f"{platform.processor() or platform.machine()} CPU, {threads} thread{'s' * (threads > 1)}"


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
    figures = {
        "summary": f"held-out photos, sigma not told: {summary}",
        "test_photos": list(TEST),
        "train_photos": list(TRAIN),
        "psnr_ssim": table,
        "trained": f"{took:.1f} min on {machine()} ({len(run.metrics['history'])} epochs)",
        "command": f"python bench/pretrained.py --minutes {minutes:g} --models photo-denoiser",
    }
    return {"": (run, figures)}, figures


def codec_rows(runs: dict, photos: list[np.ndarray]) -> tuple[dict, list]:
    """Each codec's points on the photos (bench/compress_photos.py measure): aekit's quality levels, JPEG's and
    WebP's qualities; and, for each level, its files' bytes against what its entropy model expected."""
    rows = {"JPEG": [measure(photos, *pillow("JPEG", q)) for q in JPEG_QUALITIES]}
    rows["WebP"] = [measure(photos, *pillow("WEBP", q)) for q in WEBP_QUALITIES]
    rows["aekit"], checks = [], []
    for run in runs.values():
        expected: list = []
        rows["aekit"].append(measure(photos, *aekit_codec(run, expected)))
        checks.append(sum(c for _, c in expected) / sum(e for e, _ in expected) - 1)
    return rows, checks


def two_processes(run, image: np.ndarray, tmp: Path) -> dict:
    """`aekit compress` and `aekit decompress` of a photo, each in a fresh process as a user runs them: their
    wall times, and whether the file and the decoded pixels are those of this process (same bytes, same pixels)."""
    src, blob, back = tmp / "photo.png", tmp / "photo.aez", tmp / "back.png"
    Image.fromarray(image).save(src)
    times = []
    for args in (["compress", str(run.path), str(src), "-o", str(blob)], ["decompress", str(blob), "-o", str(back)]):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aekit", *args, "--force"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    code, decode = aekit_codec(run, [])
    mine = code(image)
    return {
        "process_s": [round(t, 2) for t in times],
        "same_file": blob.read_bytes() == mine,
        "same_pixels": bool(np.array_equal(np.asarray(Image.open(back).convert("RGB")), decode(mine))),
    }


def measure_codec(runs: dict, tmp: Path) -> dict:
    """The quality levels on the test photos against JPEG and WebP (BD-rate on PSNR and SSIM), and a 512x512
    photo (the middle of retina) coded and decoded in this process and in fresh ones."""
    photos = [test_photo(name) for name in TEST]
    rows, checks = codec_rows(runs, photos)
    print(f"{'codec':16} {'bpp':>7} {'PSNR':>8} {'SSIM':>7} {'code s/MP':>10} {'decode s/MP':>12}")
    labels = {"JPEG": JPEG_QUALITIES, "WebP": WEBP_QUALITIES, "aekit": list(runs)}
    for codec, points in rows.items():
        for label, r in zip(labels[codec], points, strict=True):
            print(f"{codec} {'q' if codec != 'aekit' else 'quality '}{label}".ljust(16)
                  + f" {r['bpp']:7.3f} {r['psnr']:6.2f}dB {r['ssim']:7.4f} {r['code_s_mp']:10.3f}"
                  f" {r['decode_s_mp']:12.3f}")  # fmt: skip
    bd = {f"{a} {m}": bd_rate(rows[a], rows["aekit"], m) for a in ("JPEG", "WebP") for m in ("psnr", "ssim")}
    for key, value in bd.items():
        print(f"BD-rate against {key}: {value:+.1%}")
    retina = test_photo("retina")
    top, left = (retina.shape[0] - 512) // 2, (retina.shape[1] - 512) // 2
    middle = np.ascontiguousarray(retina[top : top + 512, left : left + 512])
    speed = {}
    for quality, run in runs.items():
        r = measure([middle], *aekit_codec(run, []))  # seconds per megapixel; 512x512 is 0.262144 of one
        seconds = {"code_s": round(r["code_s_mp"] * 0.262144, 3), "decode_s": round(r["decode_s_mp"] * 0.262144, 3)}
        speed[quality] = {**seconds, **two_processes(run, middle, tmp)}
        print(f"quality {quality}, 512x512: {speed[quality]}")
    return {"rows": rows, "bd_rate": bd, "checks": checks, "512x512": speed}


def train_codec(folder: Path, tmp: Path, minutes: float):
    outs = [tmp / "photo-codec" / str(q) for q in range(1, len(CODEC_LAMBDAS) + 1)]
    jobs = [(folder, "ae", out, minutes, None, settings(v, [])) for v, out in zip(CODEC_LAMBDAS, outs, strict=True)]
    side_by_side([job for job in jobs if finished(job[2]) is None], 2)  # two at a time, one thread each
    runs = {out.name: halved(kept(out), tmp / "photo-codec-shipped" / out.name) for out in outs}
    m = measure_codec(runs, tmp)
    aekit_rows = m["rows"]["aekit"]
    levels = "; ".join(f"{q}: {r['bpp']:.2f} bpp {r['psnr']:.2f} dB" for q, r in zip(runs, aekit_rows, strict=True))
    summary = (f"held-out photos, quality {levels}; BD-rate against JPEG {m['bd_rate']['JPEG psnr']:+.1%} (PSNR), "
               f"against WebP {m['bd_rate']['WebP psnr']:+.1%}")  # fmt: skip
    parts = {}
    per_level = zip(runs.items(), CODEC_LAMBDAS, aekit_rows, m["512x512"].values(), strict=True)
    for (quality, run), value, row, speed in per_level:
        history = run.metrics["history"]
        parts[quality] = (run, {
            "summary": f"quality {quality} (rate_lambda {value:g}): {row['bpp']:.3f} bpp, {row['psnr']:.2f} dB PSNR, "
                       f"SSIM {row['ssim']:.4f} on the held-out photos",
            "test_photos": list(TEST), "train_photos": list(TRAIN), "point": row, "512x512": speed,
            "trained": f"{sum(r['time_s'] for r in history) / 60:.1f} min on {machine(1)} ({len(history)} epochs; "
                       "two compressors at a time)",
        })  # fmt: skip
    return parts, {
        "summary": summary, "test_photos": list(TEST), "train_photos": list(TRAIN), "bd_rate": m["bd_rate"],
        "rows": m["rows"], "entropy_estimate_off": m["checks"], "512x512": m["512x512"],
        "command": f"python bench/pretrained.py --minutes {minutes:g} --models photo-codec",
    }  # fmt: skip


MODELS = {"photo-denoiser": train_denoiser, "photo-codec": train_codec}


def ship(name: str, parts: dict, figures: dict, out: Path) -> None:
    """Each part's run's KEPT files and a metrics.json of its figures into out/NAME/PART (a part "" is out/NAME
    itself), the model's figures into out/NAME/metrics.json; replacing what was there."""
    target = out / name
    staged = out / f".{name}.new"
    shutil.rmtree(staged, ignore_errors=True)
    for part, (run, part_figures) in parts.items():
        (staged / part).mkdir(parents=True, exist_ok=True)
        for kept_name in KEPT:
            shutil.copyfile(run.path / kept_name, staged / part / kept_name)  # files of the package: mode 644
        if part:
            (staged / part / "metrics.json").write_text(json.dumps({"shipped": part_figures}, indent=1) + "\n")
    (staged / "metrics.json").write_text(json.dumps({"shipped": figures}, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staged.rename(target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
    print(f"shipped {target} ({size:.1f} MB): {figures['summary']}")
    for _, part_figures in parts.values():
        print(f"  trained {part_figures['trained']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of each model (default 30)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"which, of {','.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=pretrained.FOLDER, help="where the model folders go")
    parser.add_argument("--keep", type=Path, help="keep the codec's runs there; finished ones are measured again")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = args.keep or Path(name)
        folder = tmp / "train"
        folder.mkdir(parents=True, exist_ok=True)
        for photo_name in TRAIN:
            Image.fromarray(photo(photo_name)).save(folder / f"{photo_name}.png")
        for model in args.models.split(","):
            parts, figures = MODELS[model](folder, tmp, args.minutes)
            ship(model, parts, figures, args.out)
    print(f"\nreproduce: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
