"""Compressing the MNIST test set: aekit's .aez files against WebP, JPEG and PNG through Pillow.

aekit codes the 10k test images with the conv autoencoder of bench/conv_ae.py (code of 30 numbers; trained
here first if runs/conv-ae-30 is missing) at several quantization depths. Sizes are whole files divided by
the number of images (aekit: one file, its header and tables shared; image formats: one file per image, as
they are used). PSNR over the whole set in [0, 1] pixels. Targets: at PSNR >= 24 dB at most 40 bytes per
image, and at least 3x fewer bytes than WebP at equal PSNR. The entropy coder is compared with lzma and zlib
over the same quantized codes. Then the same model trained for rate and distortion (`rate_lambda`, each of
--rate-lambdas; runs/conv-ae-rd-LAMBDA, trained here when missing): its own integer codes and tables (.aez
version 2), against the target: fewer bytes than the quantized model's 16.0 B at 24 dB or more.

    python bench/compress.py [--rate-lambdas 15,30,60]
"""

from __future__ import annotations

import argparse
import io
import lzma
import os
import sys
import time
import zlib

import numpy as np
import torch
from PIL import Image

import aekit
from aekit.apps import compress
from aekit.metrics import psnr

TARGET_DB, TARGET_BYTES, TARGET_RATIO = 24.0, 40.0, 3.0


def codec_sizes(images: np.ndarray, fmt: str, **options) -> tuple[float, float]:
    """(bytes per image, PSNR) of saving each uint8 image (N, 28, 28) alone in fmt and reading it back."""
    total, se = 0, 0.0
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, fmt, **options)
        total += buf.tell()
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=np.float64)
        se += np.square((back - img) / 255).sum()
    return total / len(images), psnr(se / images.size)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/conv-ae-30")
    p.add_argument("--rate-lambdas", default="15,30,60", help="rate_lambda of each compressor ('' for none)")
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.run, "model.safetensors")):
        from conv_ae import OPTIONS

        print(f"training the model first ({a.run}) ...", flush=True)
        aekit.train("mnist", "ae", out=a.run, force=True, quiet=True, **OPTIONS)
    run = aekit.Run.open(a.run)
    test = aekit.data.load("mnist").test
    x, pixels = test.floats(), test.x[:, 0].numpy()

    rows, best = [], None
    for bits in (4, 5, 6, 7, 8, 10):
        start = time.perf_counter()
        blob = compress.compress(run, x, bits)
        seconds = time.perf_counter() - start
        x_hat, _ = compress.decompress(blob, run)
        db = psnr(float((x_hat - x).pow(2).mean()))
        q = compress.quantize(compress.encode_all(run.model, x), bits).q
        symbols = q.T.astype(np.uint16 if bits > 8 else np.uint8).tobytes()  # dimension by dimension
        alt = {
            "lzma": len(lzma.compress(symbols, preset=9 | lzma.PRESET_EXTREME)),
            "zlib": len(zlib.compress(symbols, 9)),
        }
        rows.append((f"aekit .aez, {bits} bits/dim", len(blob) / len(x), db, seconds, alt))
        if db >= TARGET_DB and (best is None or len(blob) < best[1] * len(x)):
            best = rows[-1]
    learned = []
    for value in [float(v) for v in a.rate_lambdas.split(",") if v]:
        from conv_ae import OPTIONS

        path = f"runs/conv-ae-rd-{value:g}"
        if not os.path.exists(os.path.join(path, "model.safetensors")):
            print(f"training the compressor first ({path}) ...", flush=True)
            aekit.train("mnist", "ae", out=path, force=True, quiet=True, **OPTIONS, rate_lambda=value)
        rd = aekit.Run.open(path)
        blob, expected = compress._compress_learned(rd, x, rd.scaling)
        x_hat, _ = compress.decompress(blob, rd)
        learned.append((value, len(blob) / len(x), psnr(float((x_hat - x).pow(2).mean())), expected / 8 / len(x)))
    print(f"MNIST test set, {len(x)} images of 784 bytes; aekit model {a.run} (conv, code of 30)")
    print(f"{'method':32} {'bytes/image':>11} {'PSNR':>8} {'codes by lzma / zlib instead':>29}")
    for label, size, db, seconds, alt in rows:
        extra = f"{alt['lzma'] / len(x):12.1f} / {alt['zlib'] / len(x):.1f} B"
        print(f"{label:32} {size:11.1f} {db:6.2f}dB {extra:>29}   ({seconds:.1f} s to compress)")
    for value, size, db, expected in learned:
        label = f"aekit .aez, rate_lambda {value:g}"
        print(f"{label:32} {size:11.1f} {db:6.2f}dB   (its entropy model expected {expected:.1f} B)")
    for quality in (0, 5, 10, 20, 30, 50, 75):
        size, db = codec_sizes(pixels, "WEBP", quality=quality, method=6)
        print(f"{f'WebP quality {quality}':32} {size:11.1f} {db:6.2f}dB")
    for quality in (5, 10, 25):
        size, db = codec_sizes(pixels, "JPEG", quality=quality)
        print(f"{f'JPEG quality {quality}':32} {size:11.1f} {db:6.2f}dB")
    size, db = codec_sizes(pixels, "PNG", optimize=True)
    print(f"{'PNG (lossless)':32} {size:11.1f} {'inf':>6}dB")
    print(f"{'raw uint8':32} {784:11.1f} {'inf':>6}dB")

    if best is None:
        print(f"no aekit setting reaches {TARGET_DB} dB: FAIL")
        return 1
    label, size, db, _, _ = best
    lo, hi = 0, 100  # the lowest WebP quality reaching aekit's PSNR (PSNR rises with quality)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if codec_sizes(pixels, "WEBP", quality=mid, method=6)[1] >= db else (mid + 1, hi)
    webp_size, webp_db = codec_sizes(pixels, "WEBP", quality=lo, method=6)
    ratio = webp_size / size
    ok = size <= TARGET_BYTES and ratio >= TARGET_RATIO
    print(
        f"smallest aekit file at >= {TARGET_DB} dB: {label}, {size:.1f} B/image at {db:.2f} dB "
        f"(target <= {TARGET_BYTES:.0f} B); smallest WebP at >= {db:.2f} dB: quality {lo}, {webp_size:.1f} B "
        f"at {webp_db:.2f} dB, "
        f"{ratio:.1f}x more (target >= {TARGET_RATIO:.0f}x): {'PASS' if ok else 'FAIL'}"
    )
    quantized = size  # the quantized model's smallest file at the target
    reached = [(b, d, value) for value, b, d, _ in learned if d >= TARGET_DB]
    if learned:
        smallest = min(reached, default=None)
        print(
            f"rate-distortion: no compressor reaches {TARGET_DB} dB"
            if smallest is None
            else f"rate-distortion: smallest at >= {TARGET_DB} dB: rate_lambda {smallest[2]:g}, {smallest[0]:.1f} "
            f"B/image at {smallest[1]:.2f} dB, against {quantized:.1f} B for the quantized model: "
            f"{'PASS' if smallest[0] < quantized else 'FAIL'}"
        )
    print(f"reproduce: python {' '.join(sys.argv)}")
    return 0 if ok else 1


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
