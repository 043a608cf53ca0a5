"""Hyperpriors for a compressor's code maps: the scale hyperprior (Balle, Minnen, Singh, Hwang, Johnston, ICLR
2018) and the mean-scale one (Minnen, Balle, Toderici, NeurIPS 2018), both with an integer synthesis so that a file
decodes the same on any machine (see ScaleHyperprior)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .entropy import FIT_STEPS, LIKELIHOOD_FLOOR, EntropyModel, FactorizedDensity, Reader, Symbols, table_frequencies

SCALE_MIN = 0.11  # the narrowest distribution a code value is coded with (in code units: almost always 0)
SCALE_STEPS = 4  # scale levels per octave
SCALES = 36  # scale levels: SCALE_MIN * 2 ** (k / SCALE_STEPS) for k < SCALES, 0.11 to 47
GROUPS = 8  # channels of the side information: code channel c takes its scale from group c * GROUPS // C
HYPER_WIDTH = 64  # channels of the hyper-analysis network
HYPER_TABLE = 1024  # symbols per scale level's table, the escape last (enough for +-9.8 of the widest scale)
SIDE_SCALE = 4  # side information per 4x4 block of code positions


class ScaleHyperprior(EntropyModel):
    """A scale hyperprior (Balle, Minnen, Singh, Hwang, Johnston, ICLR 2018) whose synthesis is integer:
    each code value y[c, i, j] is a zero-mean Laplace distribution (convolved with a unit box, as in
    FactorizedDensity) whose standard deviation (scale) has the level

        k = base[c] + z[group(c), i // 4, j // 4],   scale = SCALE_MIN * 2 ** (k / SCALE_STEPS), k in [0, SCALES)

    where z is side information: a small network of each 4x4 block of |y| (GROUPS channels; a block alone, so
    that a network trained on crops' code maps sees on a whole photo's what it saw in training, not a crop's zero
    padding), rounded and coded first with its own factorized density. The decoder needs only integer additions
    to find each value's table (one of SCALES fixed tables): no floating-point network runs before the entropy
    decoder, so files decode the same on any machine, thread count or device (a float synthesis network computing
    the scales is where learned hyperpriors break across devices). base is learned as a float and used rounded
    (straight through) so training sees the levels files are coded with. The side information lets the scales
    follow an image's regions (flat sky, texture, edges) and each image's own statistics, which one density per
    channel cannot. Laplace rather than the paper's Gaussian: with side information per 4x4 block and group of
    channels the codes stay heavy-tailed, and a Laplace codes them in fewer bits (bench/compress_photos.py)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels, groups = channels, min(GROUPS, channels)
        self.analysis = nn.Sequential(  # each 4x4 block of |y| alone: the same on a crop's map and a photo's
            nn.Conv2d(channels, HYPER_WIDTH, SIDE_SCALE, stride=SIDE_SCALE),
            nn.SiLU(),
            nn.Conv2d(HYPER_WIDTH, HYPER_WIDTH, 1),
            nn.SiLU(),
            nn.Conv2d(HYPER_WIDTH, groups, 1),
        )
        self.base = nn.Parameter(torch.full((channels,), SCALES / 2))
        self.side = FactorizedDensity(groups)
        self.register_buffer("group", torch.arange(channels) * groups // channels, persistent=False)
        # the integer tables: each channel's base level, and for each scale level its lowest symbol value, its
        # symbols' count (escape included) and frequencies in units of 2**PROB_BITS
        self.register_buffer("base_level", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("offset", torch.zeros(SCALES, dtype=torch.int32))
        self.register_buffer("count", torch.zeros(SCALES, dtype=torch.int32))
        self.register_buffer("frequencies", torch.zeros(SCALES, HYPER_TABLE, dtype=torch.int32))

    def side_code(self, y: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        """The side information of code maps y (N, C, h, w): (N, GROUPS, ceil(h/4), ceil(w/4)), whole numbers
        (or with noise in training)."""
        h, w = y.shape[2:]
        z = self.analysis(F.pad(y.abs(), (0, -w % SIDE_SCALE, 0, -h % SIDE_SCALE)))
        return self._noise(z, True) if noisy else torch.round(z)

    def levels(self, z: torch.Tensor, size: tuple[int, int], base: torch.Tensor) -> torch.Tensor:
        """Each code value's scale level (N, C, h, w) from side information z and per-channel base levels."""
        return (base.view(1, -1, 1, 1) + _blocks_spread(z[:, self.group.to(z.device)], size)).clamp(0, SCALES - 1)

    def _base(self) -> torch.Tensor:
        """Each channel's base level as files use it: base rounded (straight through) into [0, SCALES). Training
        can push a channel's base past the widest level; the bits must then be counted with the level its files
        are coded with, or the estimate falls below the file's size."""
        return _rounded(self.base).clamp(0, SCALES - 1)

    def bits(self, y: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        with torch.autocast(y.device.type, enabled=False):
            return self._scale_bits(y.float(), noisy)

    def _scale_bits(self, y: torch.Tensor, noisy: bool) -> torch.Tensor:
        """The bits of code maps y (N, C, h, w) (float32) and of their side information."""
        z = self.side_code(_rounded(y), noisy)  # from what a file holds (the code rounded), in training too
        scale = SCALE_MIN * 2 ** (self.levels(z, y.shape[2:], self._base()) / SCALE_STEPS)
        p = _laplace_mass(self._noise(y, noisy), scale).clamp_min(LIKELIHOOD_FLOOR)
        return -torch.log2(p).sum(dim=(1, 2, 3)) + self.side.bits(z)

    def _centred(self, codes: torch.Tensor) -> torch.Tensor:
        """What the scales describe of code maps (N, C, h, w): the codes themselves (MeanScaleHyperprior: less
        their block means)."""
        return codes

    def fit(self, codes: torch.Tensor, steps: int = FIT_STEPS, batch: int = 64) -> None:
        """As EntropyModel.fit, from base levels at each channel's spread in codes (N, C, h, w)."""
        spread = self._centred(codes).transpose(0, 1).flatten(1).std(dim=1).clamp_min(SCALE_MIN)
        with torch.no_grad():
            self.base.copy_((SCALE_STEPS * torch.log2(spread / SCALE_MIN)).clamp(0, SCALES - 1))
        super().fit(codes, steps, batch)

    @torch.no_grad()
    def symbols(self, maps: list[torch.Tensor]) -> list[Symbols]:
        """The side information (the side density's group), then the code values in channel-major order, each with
        its scale level's table."""
        device = self.base.device
        sides = [self.side_code(m[None].float().to(device))[0].cpu() for m in maps]
        levels = [self._levels(z, m.shape[1:]) for z, m in zip(sides, maps, strict=True)]
        values = torch.cat([m.flatten() for m in maps]).long().numpy()
        table = torch.cat([k.flatten() for k in levels]).numpy()
        return self.side.symbols(sides) + [Symbols(values, table, self.tables())]

    def from_symbols(self, read: Reader, sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        sides = self.side.from_symbols(read, [tuple(-(-n // SIDE_SCALE) for n in size) for size in sizes])
        levels = [self._levels(z, size) for z, size in zip(sides, sizes, strict=True)]
        values = read(torch.cat([k.flatten() for k in levels]).numpy(), self.tables())
        maps = torch.from_numpy(values.astype(np.float32)).split([k.numel() for k in levels])
        return [m.reshape(k.shape) for m, k in zip(maps, levels, strict=True)]

    def _levels(self, z: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """The integer scale levels (C, h, w) of a code map of size (h, w) from its side information (GROUPS, ...):
        integer arithmetic only."""
        return self.levels(z[None].long(), size, self.base_level.cpu().long())[0]

    @torch.no_grad()
    def update_tables(self) -> None:
        """The side density's tables, the base levels as integers, and a table per scale level: the integers
        within +-9.8 scales (a tail of 1e-6; at most HYPER_TABLE - 1 of them), then the escape."""
        self.side.update_tables()
        self.base_level.copy_(self._base().int())
        scales = SCALE_MIN * 2 ** (torch.arange(SCALES, dtype=torch.float64) / SCALE_STEPS)
        reach = torch.minimum(torch.ceil(9.8 * scales), torch.tensor((HYPER_TABLE - 2) // 2)).long()
        self.frequencies.zero_()
        for k, r in enumerate(reach.tolist()):
            values = torch.arange(-r, r + 1, dtype=torch.float64)
            table = table_frequencies(_laplace_mass(values, scales[k]))
            self.frequencies[k, : len(table)] = torch.from_numpy(table).int()
        self.offset.copy_(-reach.int())
        self.count.copy_((2 * reach + 2).int())

    @property
    def has_tables(self) -> bool:
        return bool((self.count > 0).all()) and self.side.has_tables


MEANS = 4  # meanscale: the code channels with a mean per block, the first (from block PCA: brightness and colour)


class MeanScaleHyperprior(ScaleHyperprior):
    """A ScaleHyperprior whose first MEANS code channels also have a mean per 4x4 block of code positions: the
    block's mean of the integer code, rounded, coded before the side information with a factorized density of its
    own; those channels' values are coded less their block's mean (mean-scale: Minnen, Balle, Toderici, NeurIPS
    2018, here with integer means a file carries rather than means a float network predicts, so decoding stays
    integer arithmetic). A compressor that starts from block PCA keeps each block's brightness and colour in
    its first channels: slowly varying values of a wide spread, which a zero-mean distribution codes at the
    width of their whole range."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.means = min(MEANS, channels)
        self.mean_density = FactorizedDensity(self.means)

    def block_means(self, q: torch.Tensor) -> torch.Tensor:
        """The rounded mean of each 4x4 block of the first MEANS channels of integer code maps q (N, C, h, w): (N,
        MEANS, ceil(h/4), ceil(w/4)), over the block's positions within the map; the rounding's gradient passed
        straight through."""
        h, w = q.shape[2:]
        pad = (0, -w % SIDE_SCALE, 0, -h % SIDE_SCALE)
        ones = F.pad(torch.ones_like(q[:1, :1]), pad)
        return _rounded(F.avg_pool2d(F.pad(q[:, : self.means], pad), SIDE_SCALE) / F.avg_pool2d(ones, SIDE_SCALE))

    def _less(self, y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """Code maps y (N, C, h, w) less the block means of their first channels."""
        spread = _blocks_spread(means, y.shape[2:])
        return torch.cat([y[:, : self.means] - spread, y[:, self.means :]], dim=1)

    def _centred(self, codes: torch.Tensor) -> torch.Tensor:
        return self._less(codes, self.block_means(codes))

    def bits(self, y: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        with torch.autocast(y.device.type, enabled=False):
            y = y.float()
            means = self.block_means(_rounded(y))  # integers, from what a file holds
            return self._scale_bits(self._less(y, means), noisy) + self.mean_density.bits(means)

    @torch.no_grad()
    def symbols(self, maps: list[torch.Tensor]) -> list[Symbols]:
        """The block means (their density's group), then the rest as ScaleHyperprior codes the code maps less
        those means."""
        means = [self.block_means(m[None].float())[0] for m in maps]
        rest = [self._less(m[None].float(), u[None])[0] for m, u in zip(maps, means, strict=True)]
        return self.mean_density.symbols(means) + super().symbols(rest)

    def from_symbols(self, read: Reader, sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        means = self.mean_density.from_symbols(read, [tuple(-(-n // SIDE_SCALE) for n in size) for size in sizes])
        rest = super().from_symbols(read, sizes)
        return [self._less(m[None], -u[None])[0] for m, u in zip(rest, means, strict=True)]  # the means added back

    @torch.no_grad()
    def update_tables(self) -> None:
        super().update_tables()
        self.mean_density.update_tables()

    @property
    def has_tables(self) -> bool:
        return super().has_tables and self.mean_density.has_tables


def _blocks_spread(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Values per 4x4 block (N, K, ceil(h/4), ceil(w/4)) at each position of maps of size (h, w): (N, K, h, w)."""
    return values.repeat_interleave(SIDE_SCALE, 2).repeat_interleave(SIDE_SCALE, 3)[..., : size[0], : size[1]]


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """round(x), its gradient passed straight through."""
    return x + (torch.round(x) - x).detach()


def _laplace_mass(y: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """P(Y + U == y) for Y Laplace with mean 0 and standard deviation scale, U ~ U(-1/2, 1/2): the Laplace's
    mass on [|y| - 1/2, |y| + 1/2], from its upper tail 0.5 exp(-x / b), b = scale / sqrt(2)."""
    v, b = y.abs(), scale / math.sqrt(2.0)
    upper = 0.5 * torch.exp(-(v + 0.5) / b)
    lower = torch.where(
        v >= 0.5, 0.5 * torch.exp(-(v - 0.5).clamp_min(0) / b), 1 - 0.5 * torch.exp((v - 0.5).clamp_max(0) / b)
    )
    return lower - upper


ENTROPY_MODELS = {
    "factorized": FactorizedDensity,
    "hyperprior": ScaleHyperprior,
    "meanscale": MeanScaleHyperprior,
}  # a compressor's `entropy` option
