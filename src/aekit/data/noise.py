"""Corruptions for denoising: random shifts, Gaussian noise, salt-and-pepper, masking. Inputs and outputs
in [0, 1].

Each takes an optional torch.Generator (on the input's device) for reproducible noise; without one the
global RNG is used, which the trainer saves with every checkpoint so a resumed run draws the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NOISES = ("shift", "gaussian", "salt_pepper", "masking")


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


def gaussian(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x + N(0, sigma^2) per value, clipped to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + sigma * noise).clamp_(0, 1)


def salt_pepper(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction p of the values set to 0 or 1 (half each, on average)."""
    u = _uniform(x, generator)
    return torch.where(u < p / 2, torch.zeros_like(x), torch.where(u < p, torch.ones_like(x), x))


def masking(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction p of the values set to 0."""
    return x * (_uniform(x, generator) >= p)


def corrupt(
    x: torch.Tensor,
    kinds: Sequence[str],
    sigma: float,
    p: float,
    generator: torch.Generator | None = None,
    pixels: int = 1,
) -> torch.Tensor:
    """Apply each named corruption in kinds, in the order of NOISES (shifts first, masking last)."""
    if "shift" in kinds and pixels > 0:
        x = shift(x, pixels, generator)
    if "gaussian" in kinds:
        x = gaussian(x, sigma, generator)
    if "salt_pepper" in kinds:
        x = salt_pepper(x, p, generator)
    if "masking" in kinds:
        x = masking(x, p, generator)
    return x
