"""Whole images of any size through a fully convolutional model (model.config.any_size): in overlapping tiles of
the size it was trained on, blended where they overlap.

Tiles of the training size keep every statistic the model's normalisation layers see as they were in training,
and bound the memory: a 12-megapixel photo needs its pixels, the output and one batch of tiles, never the
activations of the whole image at once. Each tile's output is weighted by a window that ramps down over the
overlap, so seams do not show; an image smaller than a tile is padded (edge pixels repeated) and cut back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

TILES_PER_BATCH = 32


def starts(n: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of size tile start to cover 0..n with at least overlap pixels shared by neighbours."""
    if n <= tile:
        return [0]
    step = tile - overlap
    return [*range(0, n - tile, step), n - tile]


def window(tile: int, overlap: int) -> torch.Tensor:
    """Blending weights along one side of a tile: 1 inside, a linear ramp over the overlap at each end."""
    i = torch.arange(tile, dtype=torch.float32)
    ramp = float(overlap + 1)
    return torch.minimum(torch.ones(tile), torch.minimum((i + 1) / ramp, (tile - i) / ramp))


@torch.no_grad()
def map_image(
    model: torch.nn.Module,
    image: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    overlap: tuple[int, int] | None = None,
) -> torch.Tensor:
    """fn (default: the model's reconstruction) over image (C, H, W), uint8 or floats in [0, 1], in tiles of
    the model's input size overlapping by overlap (default a quarter of a tile): (C', H, W) float32 on the CPU.
    fn takes a batch of tiles (B, C, h, w) on the model's device and returns (B, C', h, w)."""
    fn = fn or model.reconstruct
    th, tw = model.config.input_shape[1:]
    oh, ow = overlap or (th // 4, tw // 4)
    _, h, w = image.shape
    if h < th or w < tw:  # smaller than one tile: repeat the edge pixels, cut back at the end
        image = F.pad(floats(image)[None], (0, max(0, tw - w), 0, max(0, th - h)), mode="replicate")[0]
    big_h, big_w = image.shape[1:]
    weight = window(th, oh)[:, None] * window(tw, ow)[None, :]
    places = [(y, x) for y in starts(big_h, th, oh) for x in starts(big_w, tw, ow)]
    out, total = None, torch.zeros(big_h, big_w)
    for k in range(0, len(places), TILES_PER_BATCH):
        chunk = places[k : k + TILES_PER_BATCH]
        batch = torch.stack([floats(image[:, y : y + th, x : x + tw]) for y, x in chunk])
        result = fn(batch.to(model.device)).float().cpu()
        if out is None:
            out = torch.zeros(result.shape[1], big_h, big_w)
        for (y, x), r in zip(chunk, result, strict=True):
            out[:, y : y + th, x : x + tw] += r * weight
            total[y : y + th, x : x + tw] += weight
    return out.div_(total)[:, :h, :w]


def floats(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1] (uint8 ones divided by 255)."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()
