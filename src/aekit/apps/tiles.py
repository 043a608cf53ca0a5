"""Whole images of any size through a fully convolutional model (model.config.any_size): in overlapping tiles of
the size it was trained on, blended where they overlap.

Tiles of the training size keep every statistic the model's normalisation layers see as they were in training,
and bound the memory: a 12-megapixel photo needs its pixels, the output and one batch of tiles, never the
activations of the whole image at once. Each tile's output is weighted by a window that ramps down over the
overlap, so seams do not show; an image smaller than a tile is padded (edge pixels repeated) and cut back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from ..models.base import fit_codes
from ..models.layers import activation_bytes
from ..progress import chunks

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
    quarter of a tile), and how their outputs blend. A tile that reaches past an image smaller than it is padded
    as it is cut (edge pixels repeated), and only its part inside the image counts: nothing is ever allocated at
    more than the image's own size (a photo of 1 x 10^7 pixels stays 10^7 pixels, not a tile's height times it)."""

    def __init__(self, model: torch.nn.Module, image: torch.Tensor, overlap: tuple[int, int] | None = None) -> None:
        self.tile = th, tw = tuple(model.config.input_shape[1:])
        oh, ow = overlap or (th // 4, tw // 4)
        self.image = image
        self.size = h, w = tuple(image.shape[1:])
        self.weight = window(th, oh)[:, None] * window(tw, ow)[None, :]
        self.places = [(y, x) for y in starts(h, th, oh) for x in starts(w, tw, ow)]
        self.total = torch.zeros(h, w)
        for y, x in self.places:
            self.total[y : y + th, x : x + tw] += self.weight[: h - y, : w - x]

    def chunks(self, what: str | None = None) -> Iterator[slice]:
        """The tiles in batches of at most TILES_PER_BATCH, as slices of self.places; with what, the loop's progress
        shown (progress.chunks)."""
        return chunks(len(self.places), TILES_PER_BATCH, what)

    def cut(self, part: slice, image: torch.Tensor | None = None, edges: bool = True) -> torch.Tensor:
        """The tiles of part as a batch (B, C, h, w), float32, cut from image (default self.image); where a tile
        reaches past the image, its edge pixels repeated (edges) or zeros."""
        image = self.image if image is None else image
        th, tw = self.tile
        batch = []
        for y, x in self.places[part]:
            tile = floats(image[:, y : y + th, x : x + tw])
            short_h, short_w = th - tile.shape[1], tw - tile.shape[2]
            if short_h or short_w:
                tile = F.pad(tile[None], (0, short_w, 0, short_h), mode="replicate" if edges else "constant")[0]
            batch.append(tile)
        return torch.stack(batch)

    def shares(self, part: slice) -> torch.Tensor:
        """Each tile's share of the blended pixels it covers (0 past the image), (B, 1, h, w) for the tiles of part."""
        (th, tw), (h, w) = self.tile, self.size
        out = torch.zeros(len(self.places[part]), 1, th, tw)
        for share, (y, x) in zip(out, self.places[part], strict=True):
            share[0, : h - y, : w - x] = self.weight[: h - y, : w - x] / self.total[y : y + th, x : x + tw]
        return out

    def blend(self, outputs: Iterable[torch.Tensor]) -> torch.Tensor:
        """The tiles' outputs (one (B, C', h, w) batch per chunk, in order; each added as it comes, so that a
        generator of them never holds more than one batch) blended: (C', H, W) at the image's own size."""
        (th, tw), (h, w) = self.tile, self.size
        places, out = iter(self.places), None
        for batch in outputs:
            for r in batch.float().cpu():
                y, x = next(places)
                out = torch.zeros(r.shape[0], h, w) if out is None else out
                out[:, y : y + th, x : x + tw] += r[:, : h - y, : w - x] * self.weight[: h - y, : w - x]
        return out.div_(self.total)


def tiling_bytes(model: torch.nn.Module, size: tuple[int, int], out_channels: int, refine: int = 0) -> int:
    """The memory map_image (refine_image with refine steps) takes over an image of size (H, W) beside the image
    itself: its output of out_channels and the blend's weights at the image's size, the tiles' places, and a
    batch of tiles through the model; refining also holds the image and its residual as floats, every tile's
    share of the blend, and every tile's code with its gradient and Adam's two moments."""
    config = model.config
    (th, tw), (h, w) = config.input_shape[1:], size
    tiles = len(starts(h, th, th // 4)) * len(starts(w, tw, tw // 4))
    need = 4 * (out_channels + 1) * h * w + 200 * tiles
    need += activation_bytes(config, TILES_PER_BATCH, th, tw, backward=refine > 0)
    if refine:
        need += 8 * config.input_shape[0] * h * w + tiles * (4 * th * tw + 16 * config.latent_dim)
    return need


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
    what = "a {}x{} image's tiles".format(*tiling.size)
    return tiling.blend(fn(tiling.cut(part).to(model.device)).cpu() for part in tiling.chunks(what))


def refine_image(model: torch.nn.Module, image: torch.Tensor, steps: int) -> torch.Tensor:
    """image (C, H, W) rebuilt, as map_image does, from codes of its tiles fitted for steps steps together
    (models.base.fit_codes): the error minimised is the blended image's, so each tile's code is fitted where its
    output counts, not on the borders its neighbours cover (closer than fitting each tile on its own). Each step
    decodes every tile twice (the blend, then the gradient) and goes back through the decoder once; memory holds
    the codes of all tiles and one batch of tiles' activations."""
    model.check_refine(steps)
    if not steps:
        return map_image(model, image)
    tiling = Tiling(model, image)
    device, parts = model.device, list(tiling.chunks())
    target = floats(tiling.image)
    shares = [tiling.shares(part).to(device) for part in parts]
    with torch.no_grad():
        z = torch.cat([model.encode(tiling.cut(part).to(device)) for part in parts])

    def gradient(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            residual = tiling.blend(model.decode(z[part]) for part in parts) - target
        grads = []
        for part, share in zip(parts, shares, strict=True):  # d(error)/d(tile output) = 2 * residual * its share
            zp = z[part]
            out = torch.sigmoid(model.decode_logits(zp))
            grad_out = 2 * tiling.cut(part, residual, edges=False).to(device) * share
            grads.append(torch.autograd.grad(out, [zp], grad_out)[0])
        return torch.cat(grads)

    with torch.no_grad():
        what = "fitting the codes of a {}x{} image".format(*tiling.size)
        return tiling.blend(model.decode(zp) for zp in fit_codes(z, gradient, steps, what=what).split(TILES_PER_BATCH))


def floats(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1] (uint8 ones divided by 255)."""
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()
