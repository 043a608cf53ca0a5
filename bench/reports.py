"""Reports of MNIST runs in a real browser: each type trained briefly on MNIST, `aekit report` of each,
opened in headless Chromium (tests/browser.py): its size, the seconds it took, console errors, network requests
and whether every figure decoded.

    python bench/reports.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import aekit  # noqa: E402
from browser import open_page  # noqa: E402

RUNS = {
    "ae": {},
    "dae": {"backbone": "conv", "latent_dim": 64},
    "sae": {"sparsity": "kl", "rho": 0.05, "sparsity_weight": 3.0},
    "vae": {"latent_dim": 2},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        print("| type | report | seconds to make | figures decoded | console errors | network requests |")
        print("| --- | --- | --- | --- | --- | --- |")
        for model, options in RUNS.items():
            run = aekit.train("mnist", model, out=Path(tmp) / model, epochs=args.epochs, quiet=True, **options)
            start = time.perf_counter()
            report = aekit.report(run, Path(tmp) / f"{model}.html")
            seconds = time.perf_counter() - start
            seen = open_page(Path(tmp) / f"{model}.html")
            decoded = f"{sum(seen.images)} of {report['figures']}"
            print(
                f"| {model} | {report['bytes'] / 1e6:.2f} MB | {seconds:.1f} | {decoded} | {len(seen.errors)} | "
                f"{len(seen.requests)} |",
                flush=True,
            )
            ok = seen.errors == [] and seen.requests == [] and all(seen.images) and report["bytes"] < 5e6
            worst = max(worst, 0 if ok else 1)
    print(f"reproduce: python bench/reports.py --epochs {args.epochs}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
