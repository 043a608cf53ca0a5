"""Corruptions for denoising: Gaussian noise, salt-and-pepper, masking. Inputs and outputs in [0, 1].

Each takes an optional torch.Generator (on the input's device) for reproducible noise; without one the
global RNG is used, which the trainer saves with every checkpoint so a resumed run draws the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NOISES = ("gaussian", "salt_pepper", "masking")


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


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
    x: torch.Tensor, kinds: Sequence[str], sigma: float, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply each named corruption in kinds, in the order of NOISES (Gaussian noise first, masking last)."""
    if "gaussian" in kinds:
        x = gaussian(x, sigma, generator)
    if "salt_pepper" in kinds:
        x = salt_pepper(x, p, generator)
    if "masking" in kinds:
        x = masking(x, p, generator)
    return x
