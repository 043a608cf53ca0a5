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

from ..models.base import fit_codes

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


class Tiling:
    """Where the tiles of the model's input size lie over an image (C, H, W), overlapping by overlap (default a
    quarter of a tile), and how their outputs blend. An image smaller than a tile is padded first (edge pixels
    repeated): self.image is what the tiles cut, self.size the image's own (H, W) to cut the output back to."""

    def __init__(self, model: torch.nn.Module, image: torch.Tensor, overlap: tuple[int, int] | None = None) -> None:
        self.tile = th, tw = tuple(model.config.input_shape[1:])
        oh, ow = overlap or (th // 4, tw // 4)
        self.size = h, w = tuple(image.shape[1:])
        if h < th or w < tw:
            image = F.pad(floats(image)[None], (0, max(0, tw - w), 0, max(0, th - h)), mode="replicate")[0]
        self.image = image
        big_h, big_w = image.shape[1:]
        self.weight = window(th, oh)[:, None] * window(tw, ow)[None, :]
        self.places = [(y, x) for y in starts(big_h, th, oh) for x in starts(big_w, tw, ow)]
        self.total = torch.zeros(big_h, big_w)
        for y, x in self.places:
            self.total[y : y + th, x : x + tw] += self.weight

    def chunks(self) -> list[slice]:
        """The tiles in batches of at most TILES_PER_BATCH, as slices of self.places."""
        return [slice(k, k + TILES_PER_BATCH) for k in range(0, len(self.places), TILES_PER_BATCH)]

    def cut(self, part: slice, image: torch.Tensor | None = None) -> torch.Tensor:
        """The tiles of part as a batch (B, C, h, w), float32, cut from image (default self.image)."""
        image = self.image if image is None else image
        th, tw = self.tile
        return torch.stack([floats(image[:, y : y + th, x : x + tw]) for y, x in self.places[part]])

    def shares(self, part: slice) -> torch.Tensor:
        """Each tile's share of the blended pixels it covers, (B, 1, h, w) for the tiles of part."""
        (th, tw), total = self.tile, self.total
        return torch.stack([self.weight / total[y : y + th, x : x + tw] for y, x in self.places[part]])[:, None]

    def blend(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """The tiles' outputs (one (B, C', h, w) batch per chunk, in order) blended: (C', H, W) at the image's
        own size."""
        th, tw = self.tile
        out = torch.zeros(outputs[0].shape[1], *self.total.shape)
        for (y, x), r in zip(self.places, (r for batch in outputs for r in batch.float().cpu()), strict=True):
            out[:, y : y + th, x : x + tw] += r * self.weight
        h, w = self.size
        return out.div_(self.total)[:, :h, :w]


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
    tiling = Tiling(model, image, overlap)
    return tiling.blend([fn(tiling.cut(part).to(model.device)).cpu() for part in tiling.chunks()])


def refine_image(model: torch.nn.Module, image: torch.Tensor, steps: int) -> torch.Tensor:
    """image (C, H, W) rebuilt, as map_image does, from codes of its tiles fitted for steps steps together
    (models.base.fit_codes): the error minimised is the blended image's, so each tile's code is fitted where its
    output counts, not on the borders its neighbours cover (on validation photos: +1.0 to +1.2 dB over fitting
    each tile on its own). Each step decodes every tile twice (the blend, then the gradient) and goes back
    through the decoder once; memory holds the codes of all tiles and one batch of tiles' activations."""
    model.check_refine(steps)
    if not steps:
        return map_image(model, image)
    tiling = Tiling(model, image)
    device, parts = model.device, tiling.chunks()
    target = floats(tiling.image)
    h, w = tiling.size
    shares = [tiling.shares(part).to(device) for part in parts]
    with torch.no_grad():
        z = torch.cat([model.encode(tiling.cut(part).to(device)) for part in parts])

    def gradient(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            residual = torch.zeros_like(target)
            residual[:, :h, :w] = tiling.blend([model.decode(z[part]) for part in parts]) - target[:, :h, :w]
        grads = []
        for part, share in zip(parts, shares, strict=True):  # d(error)/d(tile output) = 2 * residual * its share
            zp = z[part]
            out = torch.sigmoid(model.decode_logits(zp))
            grads.append(torch.autograd.grad(out, [zp], 2 * tiling.cut(part, residual).to(device) * share)[0])
        return torch.cat(grads)

    with torch.no_grad():
        return tiling.blend([model.decode(zp) for zp in fit_codes(z, gradient, steps).split(TILES_PER_BATCH)])


def floats(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1] (uint8 ones divided by 255)."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()
