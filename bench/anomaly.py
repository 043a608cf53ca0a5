"""One-class MNIST: train on one digit, score all 10k test images, that digit normal, the rest anomalies.

For each digit, aekit trains its detector on that digit's training images (about 6k) and scores the test
set; PyOD's AutoEncoder (its defaults, 10 epochs) does the same on the same images in the same run. AUROC
per digit and the mean, with both libraries' times. Target: aekit's mean AUROC at least 0.95. Quoted: Deep
SVDD (Ruff et al. 2018, one-class) 0.948 mean AUROC on the same protocol.

    pip install pyod                 # next to torch 2.13.0 (make bench does it)
    python bench/anomaly.py
    python bench/anomaly.py --digits 2 5 8 --skip-pyod     # a quick look at the hard digits
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import aekit
from aekit.data.splits import Splits

TARGET = 0.95
MODEL = (
    "ae",
    {"hidden": (256, 64), "latent_dim": 8, "epochs": 60, "batch_size": 128, "lr": 2e-3, "schedule": "cosine"},
)


def aekit_scores(train: aekit.data.Dataset, test: torch.Tensor, tmp: str) -> tuple[np.ndarray, float]:
    name, options = MODEL
    start = time.perf_counter()
    run = aekit.train(Splits(train, None), name, out=f"{tmp}/run", force=True, quiet=True, seed=0, **options)
    return aekit.anomaly_scores(run, test), time.perf_counter() - start


def pyod_scores(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    from pyod.models.auto_encoder import AutoEncoder

    start = time.perf_counter()
    detector = AutoEncoder(epoch_num=10, verbose=0, random_state=0)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        detector.fit(train)
        scores = detector.decision_function(test)
    return scores, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--skip-pyod", action="store_true")
    a = p.parse_args()
    train, test = aekit.data.load("mnist")
    x_test, y_test = test.floats(), test.y.numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for digit in a.digits:
            normal = train.subset(torch.nonzero(train.y == digit)[:, 0])
            anomalous = y_test != digit
            scores, seconds = aekit_scores(normal, x_test, tmp)
            row = {"digit": digit, "aekit": roc_auc_score(anomalous, scores), "aekit_s": seconds}
            if not a.skip_pyod:
                scores, seconds = pyod_scores(normal.floats().flatten(1).numpy(), x_test.flatten(1).numpy())
                row.update({"pyod": roc_auc_score(anomalous, scores), "pyod_s": seconds})
            rows.append(row)
            print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)

    name, options = MODEL
    print(
        f"\none-class MNIST, AUROC on the 10k test images; aekit {name} {options}; PyOD AutoEncoder defaults, 10 epochs"
    )
    print(f"{'digit':>5} {'aekit':>7} {'PyOD':>7} {'aekit s':>8} {'PyOD s':>7}")
    for r in rows:
        pyod, pyod_s = r.get("pyod", float("nan")), r.get("pyod_s", 0.0)
        print(f"{r['digit']:5d} {r['aekit']:7.4f} {pyod:7.4f} {r['aekit_s']:8.1f} {pyod_s:7.1f}")
    mean = {k: float(np.mean([r[k] for r in rows])) if k in rows[0] else float("nan") for k in ("aekit", "pyod")}
    times = {k: sum(r.get(k, 0) for r in rows) for k in ("aekit_s", "pyod_s")}
    print(f"{'mean':>5} {mean['aekit']:7.4f} {mean['pyod']:7.4f} {times['aekit_s']:8.1f} {times['pyod_s']:7.1f}")
    print("quoted: Deep SVDD (Ruff et al. 2018), one-class, mean AUROC 0.948")
    ok = mean["aekit"] >= TARGET and len(rows) == 10
    verdict = "PASS" if ok else "FAIL"
    print(f"aekit mean AUROC {mean['aekit']:.4f} over {len(rows)} digits (target >= {TARGET} over 10): {verdict}")
    print("reproduce: python bench/anomaly.py" + (" --skip-pyod" if a.skip_pyod else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
