"""Autoencoder codes as features on MNIST: linear and kNN probes against PCA and raw pixels.

Each encoder gives 32 numbers per image; a logistic regression (on standardized features) and a 5-nearest-
neighbour classifier are fitted on the 60k training codes and scored on the 10k test codes. Target: the
logistic-regression probe on aekit's 32-d codes at least 96% test accuracy and above PCA-32's, in one run.

    python bench/features.py
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import aekit

TARGET = 0.96
MODELS = {  # label: (type, options), every one with a 32-number code
    "aekit ae, MLP 784-128-64-32": ("ae", {"epochs": 20}),
    "aekit ae, conv 32-64-128, code 32": (
        "ae",
        {"backbone": "conv", "epochs": 10, "batch_size": 128, "lr": 2e-3, "schedule": "cosine"},
    ),
    "aekit dae, MLP 784-1000-500-250-32, shift": (
        "dae",
        {
            "hidden": [1000, 500, 250],
            "activation": "gelu",
            "noise": ["shift"],
            "noise_shift": 2,
            "epochs": 30,
            "batch_size": 256,
            "lr": 1e-3,
            "schedule": "cosine",
        },
    ),
}


def probes(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """(logistic regression accuracy, 5-NN accuracy) on the test set."""
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, y_train)
    knn = KNeighborsClassifier(5).fit(train, y_train)
    return linear.score(test, y_test), knn.score(test, y_test)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/features")
    a = p.parse_args()
    train, test = aekit.data.load("mnist")
    x_train, x_test = train.floats(), test.floats()
    y_train, y_test = train.y.numpy(), test.y.numpy()
    rows = {}
    start = time.perf_counter()
    pca = PCA(32, random_state=0).fit(x_train.flatten(1).numpy())
    rows["PCA, 32 components"] = (
        *probes(pca.transform(x_train.flatten(1).numpy()), y_train, pca.transform(x_test.flatten(1).numpy()), y_test),
        time.perf_counter() - start,
    )
    for i, (label, (name, options)) in enumerate(MODELS.items()):
        start = time.perf_counter()
        run = aekit.train("mnist", name, out=f"{a.out}-{i}", force=True, quiet=True, latent_dim=32, seed=0, **options)
        seconds = time.perf_counter() - start
        z_train, z_test = aekit.features(run, x_train).numpy(), aekit.features(run, x_test).numpy()
        rows[label] = (*probes(z_train, y_train, z_test, y_test), seconds)
    rows["raw pixels (784)"] = (*probes(x_train.flatten(1).numpy(), y_train, x_test.flatten(1).numpy(), y_test), 0.0)

    print("MNIST: probes fitted on the 60k training images' features, accuracy on the 10k test images")
    print(f"{'features':44} {'logistic reg.':>13} {'5-NN':>7} {'encoder train s':>16}")
    for label, (linear, knn, seconds) in rows.items():
        print(f"{label:44} {linear:13.4f} {knn:7.4f} {seconds:16.0f}")
    best = max((v[0], k) for k, v in rows.items() if k.startswith("aekit"))
    pca_linear = rows["PCA, 32 components"][0]
    ok = best[0] >= TARGET and best[0] > pca_linear
    print(
        f"best aekit 32-d codes: {best[1]}, {best[0]:.4f} (target >= {TARGET} and above PCA-32's {pca_linear:.4f}): "
        f"{'PASS' if ok else 'FAIL'}"
    )
    print("reproduce: python bench/features.py")
    return 0 if ok else 1


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
