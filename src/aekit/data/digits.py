"""scikit-learn's bundled 8x8 handwritten digits, the built-in dataset that is always there."""

from __future__ import annotations

import os

import numpy as np

from .registry import BuiltinArrays, register_dataset


def read_digits() -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: {"x": (1797, 8, 8) float64 in [0, 16], "y": (1797,) int}."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"x": bunch.images, "y": bunch.target}


@register_dataset(
    "digits",
    "scikit-learn's bundled 8x8 handwritten digits, 1797 images (always available)",
    status=lambda data_dir: ("bundled", "(scikit-learn)"),
)
def _digits(data_dir: str | os.PathLike | None) -> BuiltinArrays:
    d = read_digits()
    test = np.zeros(len(d["x"]), dtype=bool)
    test[np.random.default_rng(0).permutation(len(test))[: len(test) // 5]] = True  # a fixed 20% test part
    # raw digits pixels are 0..16: a fixed range, so that every part and subset is scaled alike
    return BuiltinArrays(d["x"][~test], d["y"][~test], d["x"][test], d["y"][test], (0.0, 16.0))
