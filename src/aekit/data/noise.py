"""Corruptions for denoising: random shifts, Gaussian noise, salt-and-pepper, masking, pasted anomalies.
Inputs and outputs in [0, 1].

Each takes an optional torch.Generator (on the input's device) for reproducible noise; without one the
global RNG is used, which the trainer saves with every checkpoint so a resumed run draws the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

NOISES = ("shift", "gaussian", "salt_pepper", "masking", "paste")
IMAGE_NOISES = ("shift", "paste")  # they need rows and columns


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def shift(x: torch.Tensor, pixels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image (N, C, H, W) moved by up to `pixels` rows and columns either way (drawn per image), the
    uncovered border set to 0. Rebuilding the unmoved image teaches codes that ignore small shifts."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pixels, pixels, pixels, pixels))
    dy, dx = (torch.randint(0, 2 * pixels + 1, (n,), generator=generator, device=x.device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
    items = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[items, channels, rows, cols]


def gaussian(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, sigma_max: float | None = None
) -> torch.Tensor:
    """x + N(0, sigma^2) per value, clipped to [0, 1]; with sigma_max, each item's sigma drawn uniformly from
    [sigma, sigma_max] (noise of a strength the denoiser is not told)."""
    if sigma_max is not None:  # (N, 1, ...): one sigma per item
        u = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=generator, device=x.device, dtype=x.dtype)
        sigma = sigma + (sigma_max - sigma) * u
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + sigma * noise).clamp_(0, 1)


def salt_pepper(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction p of the values set to 0 or 1 (half each, on average)."""
    u = _uniform(x, generator)
    return torch.where(u < p / 2, torch.zeros_like(x), torch.where(u < p, torch.ones_like(x), x))


def masking(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction p of the values set to 0."""
    return x * (_uniform(x, generator) >= p)


def _smooth_field(n: int, h: int, w: int, generator, device, cells=(16, 8, 4)) -> torch.Tensor:
    """(N, 1, H, W) smooth random fields of unit spread: Gaussian noise on grids of cells pixels (16, 8 and 4),
    each upsampled and weighted half as much as the coarser one (a cheap Perlin-like noise)."""
    field = torch.zeros(n, 1, h, w, device=device)
    for k, cell in enumerate(cells):
        grid = torch.randn(n, 1, -(-h // cell) + 1, -(-w // cell) + 1, generator=generator, device=device)
        field += 0.5**k * F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
    return field / field.flatten(1).std(1).clamp_min(1e-6)[:, None, None, None]


def paste(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Half of the images (N, C, H, W), drawn at random, with something foreign laid over a part of each: a
    blob or a few thin curves, shaped by smooth random fields, filled with another image of the batch (flipped)
    or with one flat colour, at an opacity of 0.5 to 1. A dae rebuilding the clean image learns to find what
    does not belong and put plausible content in its place: its reconstruction error then marks defects of
    shapes and content it never saw (the idea of DRAEM, Zavrtanik et al. 2021, with anomalies drawn from the
    normal images themselves; changing their colours too made maps worse on validation photos)."""
    n, c, h, w = x.shape
    draw = lambda *shape: torch.rand(*shape, generator=generator, device=x.device)  # noqa: E731
    field, smooth = _smooth_field(n, h, w, generator, x.device), _smooth_field(n, h, w, generator, x.device, (32,))
    blob = field > 1.0 + draw(n, 1, 1, 1)  # thresholds 1 to 2 spreads: a few blobs, 2-16% of the image
    curves = (smooth.abs() < 0.03 + 0.05 * draw(n, 1, 1, 1)) & (field > 0)  # pieces of long thin curves
    mask = torch.where(draw(n, 1, 1, 1) < 0.5, blob, curves) & (draw(n, 1, 1, 1) < 0.5)
    source = torch.where(draw(n, 1, 1, 1) < 1 / 3, draw(n, c, 1, 1).expand_as(x), x.roll(1, 0).flip(2, 3))
    alpha = mask * (0.5 + 0.5 * draw(n, 1, 1, 1))
    return x * (1 - alpha) + source * alpha


def corrupt(
    x: torch.Tensor,
    kinds: Sequence[str],
    sigma: float,
    p: float,
    generator: torch.Generator | None = None,
    pixels: int = 1,
    sigma_max: float | None = None,
) -> torch.Tensor:
    """Apply each named corruption in kinds, in the order of NOISES (shifts first, masking last)."""
    if "shift" in kinds and pixels > 0:
        x = shift(x, pixels, generator)
    if "gaussian" in kinds:
        x = gaussian(x, sigma, generator, sigma_max)
    if "salt_pepper" in kinds:
        x = salt_pepper(x, p, generator)
    if "masking" in kinds:
        x = masking(x, p, generator)
    if "paste" in kinds:
        x = paste(x, generator)
    return x
