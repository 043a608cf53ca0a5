"""Small data with the default options: does aekit learn without being tuned?

1. scikit-learn's wine table (178 rows, 13 features) as a CSV, `aekit train` with no options but the data:
   test MSE against PCA with the same code size and against the mean row, for five hold-out seeds (the first,
   split_seed 0, is the one the defaults were looked at with; the other four were not seen before).
2. scikit-learn's digits (1797 x 64): AutoencoderTransformer(latent_dim=16) + LogisticRegression against
   PCA(16) + LogisticRegression, 5-fold stratified cross-validation.

    python bench/small_data.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

import aekit


def wine(tmp: Path) -> None:
    np.savetxt(tmp / "wine.csv", load_wine().data, delimiter=",", fmt="%.6g")
    print("wine (178 x 13), aekit train with default options; test MSE per hold-out seed")
    print("split_seed  aekit    pca_k    mean     code  batch  epochs  seconds")
    wins = 0
    for seed in range(5):
        start = time.perf_counter()
        run = aekit.train(tmp / "wine.csv", out=tmp / f"wine-{seed}", split_seed=seed, quiet=True, device="cpu")
        seconds = time.perf_counter() - start
        report = aekit.evaluate(run, save=False)
        k = run.config["model"]["latent_dim"]
        ours, pca, mean = (
            report["model"]["mse"],
            report["baselines"][f"pca_{k}"]["mse"],
            report["baselines"]["mean"]["mse"],
        )
        wins += ours < pca
        batch, epochs = run.config["train"]["batch_size"], run.config["train"]["epochs"]
        print(f"{seed:10d}  {ours:.5f}  {pca:.5f}  {mean:.5f}  {k:4d}  {batch:5d}  {epochs:6d}  {seconds:7.1f}")
    print(f"aekit below PCA in {wins} of 5")


def digits() -> None:
    X, y = load_digits(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)

    def accuracy(features) -> float:
        return float(cross_val_score(make_pipeline(features, LogisticRegression(max_iter=5000)), X, y, cv=cv).mean())

    start = time.perf_counter()
    ours = accuracy(aekit.AutoencoderTransformer(latent_dim=16))
    seconds = time.perf_counter() - start
    pca = accuracy(PCA(16, random_state=0))
    print("\ndigits (1797 x 64), 5-fold CV accuracy of LogisticRegression on 16 features")
    print(f"AutoencoderTransformer(latent_dim=16) {ours:.4f} ({seconds:.0f} s for 5 fits)   PCA(16) {pca:.4f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wine(Path(tmp))
    digits()
    print("\nreproduce: python bench/small_data.py")


if __name__ == "__main__":
    main()
