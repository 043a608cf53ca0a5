"""Every figure of the guide (docs/guide.md and docs/guide.ko.md), made from nothing: `make figures`.

FIGURES lists each figure (a PNG in docs/figures/guide/) with the shell commands that make it, run in order
from the repository's root with .venv/bin first on PATH; the guides show the same commands beside the figures
(tests/test_guide.py checks that they do). The runs go to runs/guide/. Prints each figure's seconds and the
total (at most 20 minutes on a 2-core CPU, set-up included: `make figures`).

    python docs/figures.py [NAME ...]     # all figures, or those named (e.g. vae-samples)
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = "docs/figures/guide"

FIGURES: dict[str, list[str]] = {
    "classic-reconstructions": [
        "aekit train mnist --model ae --hidden 128,64 --latent-dim 32 --epochs 20 --out runs/guide/classic --force",
        f"aekit reconstruct runs/guide/classic -n 10 -o {OUT}/classic-reconstructions.png --force",
    ],
    "classic-loss": [f"cp runs/guide/classic/loss_curve.png {OUT}/classic-loss.png"],
    "classic-as-written": [f"python bench/classic.py --epochs 3 --figure {OUT}/classic-as-written.png"],
    "dae-denoising": [
        "aekit train mnist --model dae --noise gaussian --noise-sigma 0.5 --latent-dim 64 --epochs 10 "
        "--out runs/guide/dae --force",
        "aekit denoise runs/guide/dae mnist --split test --add-noise gaussian --noise-sigma 0.5 "
        f"-o runs/guide/dae/clean.npz --figure {OUT}/dae-denoising.png --force",
    ],
    "sae-code": [
        "aekit train mnist --model sae --sparsity kl --rho 0.05 --sparsity-weight 3 --epochs 10 --out runs/guide/sae "
        "--force",
        "aekit report runs/guide/sae -o runs/guide/sae/report.html --figures runs/guide/sae/figures --force",
        f"cp runs/guide/sae/figures/sparse-code-histogram.png {OUT}/sae-code.png",
    ],
    "vae-samples": [
        "aekit train mnist --model vae --hidden 512,256 --latent-dim 16 --epochs 10 --out runs/guide/vae --force",
        f"aekit generate runs/guide/vae -n 64 -o {OUT}/vae-samples.png --force",
    ],
    "vae-interpolation": [f"aekit generate runs/guide/vae --interpolate 0 7 -o {OUT}/vae-interpolation.png --force"],
    "vae-manifold": [
        "aekit train mnist --model vae --latent-dim 2 --epochs 10 --out runs/guide/vae2d --force",
        f"aekit generate runs/guide/vae2d --manifold -o {OUT}/vae-manifold.png --force",
    ],
    "cvae-classes": [
        "aekit train mnist --model vae --conditional --hidden 512,256 --latent-dim 16 --epochs 30 "
        "--out runs/guide/cvae --force",
        f"aekit generate runs/guide/cvae -n 80 --sampler gmm -o {OUT}/cvae-classes.png --force",
    ],
    "compression": [
        "aekit train mnist --model ae --hidden 256,128 --latent-dim 32 --rate-lambda 40 --epochs 10 "
        "--out runs/guide/compressor --force",
        "aekit compress runs/guide/compressor mnist --split test -o runs/guide/compressor/test.aez --force",
        f"aekit reconstruct runs/guide/compressor -n 10 -o {OUT}/compression.png --force",
    ],
    "features": [f"aekit latent runs/guide/classic mnist --split test -o {OUT}/features.png --force"],
    "anomaly": [
        "aekit train mnist --classes 1 --latent-dim 8 --epochs 10 --out runs/guide/ones --force",
        f"aekit anomaly runs/guide/ones mnist --split test --normal 1 --figure {OUT}/anomaly.png --force",
    ],
}
SETUP = ["aekit data fetch mnist"]


def run(command: str) -> None:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"$ {command}", flush=True)
    result = subprocess.run(shlex.split(command), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {command}")
    shown = result.stdout.strip()
    if shown:
        print("  " + shown.replace("\n", "\n  "), flush=True)


def main(names: list[str]) -> int:
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        sys.exit(f"unknown figure(s) {', '.join(unknown)}; the figures: {', '.join(FIGURES)}")
    (ROOT / OUT).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for command in SETUP:
        run(command)
    for name in names or FIGURES:
        begun = time.perf_counter()
        for command in FIGURES[name]:
            run(command)
        print(f"{OUT}/{name}.png: {time.perf_counter() - begun:.0f} s", flush=True)
    print(f"all figures in {time.perf_counter() - start:.0f} s; reproduce: make figures")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
