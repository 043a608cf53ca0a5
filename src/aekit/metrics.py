"""Reconstruction metrics as pure functions on tensors.

Conventions: images and table features are in [0, 1]. "mse" is the mean squared error per feature
(per pixel), "sse_per_item" the squared error summed over an item's features and averaged over items
(the per-image figure papers such as Hinton & Salakhutdinov 2006 report), "psnr_db" is
10 log10(1 / mse) with mse taken over the whole set (peak value 1).
"""

from __future__ import annotations

import math

import torch


def squared_errors(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-item sum of squared errors: (N, ...) x2 -> (N,) float64."""
    return (x_hat.double() - x.double()).pow(2).flatten(1).sum(1)


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error."""
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def summarize(item_errors: torch.Tensor, n_features: int) -> dict[str, float]:
    """mse, sse_per_item and psnr_db from per-item squared errors (N,)."""
    sse = float(item_errors.mean())
    mse = sse / n_features
    return {"mse": mse, "sse_per_item": sse, "psnr_db": psnr(mse)}


def pca_reconstruct(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Reconstruct test from its projection on the top-k principal components of train."""
    from sklearn.decomposition import PCA

    a, b = train.flatten(1).double().numpy(), test.flatten(1).double().numpy()
    pca = PCA(n_components=min(k, *a.shape), random_state=0).fit(a)
    return torch.from_numpy(pca.inverse_transform(pca.transform(b))).reshape(test.shape)
