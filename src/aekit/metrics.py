"""Reconstruction metrics as pure functions on tensors.

Conventions: images and table features are in [0, 1]. "mse" is the mean squared error per feature
(per pixel), "sse_per_item" the squared error summed over an item's features and averaged over items
(the per-image figure papers such as Hinton & Salakhutdinov 2006 report), "psnr_db" is
10 log10(1 / mse) with mse taken over the whole set (peak value 1), "ssim" the mean structural similarity
of images (Wang et al. 2004).
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


BAND = 1 << 16  # values worked on at once by PSNR and SSIM over images (float64; SSIM keeps ten maps of them)


def image_psnr(x, y) -> float:
    """PSNR of y against x over all their values: tensors (N, ...) or lists of images of any sizes (in float64, a
    chunk of BAND values at a time: a whole photo is never copied)."""
    pairs = zip(x, y, strict=True) if isinstance(x, list) else [(x, y)]
    sse, count = 0.0, 0
    for a, b in pairs:
        a, b = a.reshape(-1), b.reshape(-1)
        for i in range(0, len(a), BAND):
            sse += float((b[i : i + BAND].double() - a[i : i + BAND].double()).pow_(2).sum())
        count += a.numel()
    return psnr(sse / count)


def mean_ssim(x, y) -> float:
    """Mean SSIM over images: tensors (N, C, H, W) or lists of images (C, H, W) of any sizes."""
    if isinstance(x, list):
        return float(torch.cat([ssim(a[None], b[None]) for a, b in zip(x, y, strict=True)]).mean())
    return float(ssim(x, y).mean())


def pca_reconstruct(train: torch.Tensor, test: torch.Tensor, k: int) -> torch.Tensor:
    """Reconstruct test from its projection on the top-k principal components of train."""
    return pca_fitted(train, k)(test)


def pca_fitted(train: torch.Tensor, k: int):
    """A function that rebuilds items like train's (N, ...) from their projection on train's top-k principal
    components (float64, the items' shape)."""
    from sklearn.decomposition import PCA

    a = train.flatten(1).double().numpy()
    pca = PCA(n_components=min(k, *a.shape), random_state=0).fit(a)

    def rebuild(x: torch.Tensor) -> torch.Tensor:
        b = x.flatten(1).double().cpu().numpy()
        return torch.from_numpy(pca.inverse_transform(pca.transform(b))).reshape(x.shape)

    return rebuild


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """A Gaussian of sigma over size (odd) points, centred, summing to 1: (size,) float64."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Structural similarity of images x, y (N, C, H, W) in [0, 1], per item (N,) float64 (Wang et al. 2004):
    an 11 x 11 Gaussian window of sigma 1.5 (smaller for images under 11 pixels), K1 0.01, K2 0.03, peak 1,
    the map over the window's valid positions and the channels averaged. Large images are worked on in blocks,
    so that memory stays about BAND values a map whatever their size and shape."""
    size = min(11, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2  # odd
    g = gaussian_window(size, 1.5).to(x.device)
    across, down = (g.view(shape).expand(x.shape[1], -1, -1, -1) for shape in ((1, 1, 1, -1), (1, 1, -1, 1)))
    c1, c2 = 0.01**2, 0.03**2

    def blur(t: torch.Tensor) -> torch.Tensor:  # the 2-d Gaussian as two 1-d ones: 2 x size taps, not size^2
        conv = torch.nn.functional.conv2d
        return conv(conv(t, across, groups=x.shape[1]), down, groups=x.shape[1])

    def summed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # the SSIM map of a band, summed per item
        a, b = a.double(), b.double()
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
        num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
        return (num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).flatten(1).sum(1)

    c, h, w = x.shape[1:]
    rows, cols = h - size + 1, w - size + 1  # of the map
    wide = max(1, min(cols, BAND // c))  # the map in blocks of about BAND values, each with its window's margin
    high = max(1, BAND // (c * wide * min(batch, len(x))))
    out = []
    for a, b in zip(x.split(batch), y.split(batch), strict=True):
        blocks = [(slice(r, r + high + size - 1), slice(k, k + wide + size - 1))
                  for r in range(0, rows, high) for k in range(0, cols, wide)]  # fmt: skip
        total = sum(summed(a[..., i, j], b[..., i, j]) for i, j in blocks)
        out.append(total / (c * rows * cols))
    return torch.cat(out)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to features a (N, F) and b (M, F): |mu_a - mu_b|^2 +
    tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017; FID when the features are Inception's). The trace of the
    root is that of the symmetric (S_a^(1/2) S_b S_a^(1/2))^(1/2), from eigenvalues (float64)."""
    a, b = a.double(), b.double()
    s_a, s_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(s_a)
    root_a = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp_min(0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * cross)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, batch: int = 1024) -> tuple[float, float]:
    """Improved precision and recall of generated items (Kynkaanniemi, Karras, Laine, Lehtinen, Aila 2019): the
    share of fake features (M, F) inside the real ones' manifold (the union of balls around each real feature out
    to its k-th nearest real neighbour), and the share of real features (N, F) inside the fake ones' manifold."""
    return _inside(fake, real, k, batch), _inside(real, fake, k, batch)


def _inside(x: torch.Tensor, support: torch.Tensor, k: int, batch: int) -> float:
    """The share of rows of x within the k-NN radius of some row of support (in batches of rows)."""
    support = support.float()
    radii = torch.cat([torch.cdist(s, support).kthvalue(k + 1, dim=1).values for s in support.split(batch)])
    inside = [(torch.cdist(xb.float(), support) <= radii).any(dim=1) for xb in x.split(batch)]
    return float(torch.cat(inside).float().mean())
