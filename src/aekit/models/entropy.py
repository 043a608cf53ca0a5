"""A learned density of the code, for rate-distortion training and real files: the factorized entropy model.

Balle, Minnen, Singh, Hwang, Johnston, "Variational image compression with a scale hyperprior" (ICLR 2018),
appendix 6.1: each code channel c has its own univariate density, given by a cumulative c(y) that is a small
monotone network (matrices with positive entries, tanh gates that cannot reverse the slope, a sigmoid last). The
probability of an integer symbol k is c(k + 1/2) - c(k - 1/2): the density convolved with a unit box, which is
also the density of y + u, u ~ U(-1/2, 1/2), the noisy code used in training (Balle, Laparra, Simoncelli,
"End-to-end optimized image compression", ICLR 2017). -log2 of it is the code's cost in bits.

Real files are coded from integer tables (`Tables`), computed once from the density when the model is saved and
stored with its weights: encoder and decoder read the same integers, on any machine and thread count, and the
floating-point density is never evaluated to decode. An entropy model says which integers are coded with which
table, in which order (`symbols`, `from_symbols`); the coder and the file format are the codec's (aekit.codec).

    codes y (N, C, L) --round--> integers q --tables[c]--> symbol in [0, count[c]) (or the escape symbol)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..frequencies import normalize

FILTERS = (3, 3, 3)  # hidden widths of each channel's cumulative network (the paper's choice)
INIT_SCALE = 10.0  # the initial density's spread, in code units
LIKELIHOOD_FLOOR = 1e-9  # probabilities below this cost its bits (about 30): keeps the rate finite
TABLE = 256  # symbols per channel's table: the last one is the escape of values outside the rest's range
TAIL = 1e-6  # probability mass left outside a channel's table range on each side (coded by escape)
FIT_STEPS = 300  # steps of fit(): a first compressor's codes are several bits per value from the initial density


class Tables(NamedTuple):
    """T integer coding tables: offset (T,) each table's lowest value, count (T,) its symbols with the escape last
    (the symbol of values outside the table's range), frequencies (T, S) in units of 2**PROB_BITS (zero beyond
    count). int64."""

    offset: np.ndarray
    count: np.ndarray
    frequencies: np.ndarray


class Symbols(NamedTuple):
    """Integers to code, in order: values (M,) int64, value i with table table[i] of tables."""

    values: np.ndarray
    table: np.ndarray
    tables: Tables


Reader = Callable[[np.ndarray, Tables], np.ndarray]  # (table (M,), tables) -> the next M values, coded with them


class EntropyModel(nn.Module):
    """What a compressor's entropy models share: bits(y, noisy) of codes y (N, C, ...) per item (noisy: as in
    training, with y + uniform noise in [-1/2, 1/2) standing in for round(y)), fit to a first set of codes,
    integer tables (update_tables, has_tables; buffers offset, count and frequencies, see Tables), and the
    integers of code maps in coding order: symbols(maps) for the encoder, from_symbols(read, sizes) for the
    decoder, which reads them group by group (a later group's tables can depend on what came before)."""

    def bits(self, y: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _noise(y: torch.Tensor, noisy: bool) -> torch.Tensor:
        return y + torch.empty_like(y).uniform_(-0.5, 0.5) if noisy else y

    def symbols(self, maps: list[torch.Tensor]) -> list[Symbols]:
        """Integer code maps (C, *size) -> the groups of integers that code them, in order."""
        raise NotImplementedError

    def from_symbols(self, read: Reader, sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Inverse of symbols: the code maps (C, *size) of the given sizes, each group of integers taken from read."""
        raise NotImplementedError

    def tables(self) -> Tables:
        return Tables(*(t.cpu().numpy().astype(np.int64) for t in (self.offset, self.count, self.frequencies)))

    @torch.enable_grad()
    def fit(self, codes: torch.Tensor, steps: int = FIT_STEPS, batch: int = 64) -> None:
        """Fit the model alone to codes (N, C, ...), with noise as in training: Adam, lr 1e-2, steps of batch
        items. A compressor's first codes are far from the initial density (several bits per value too many),
        and its parameters learn slowest at the training rate. Draws from torch's global generator."""
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-2)
        device = next(self.parameters()).device
        for _ in range(steps):
            y = codes[torch.randint(len(codes), (batch,))].to(device)
            loss = self.bits(y, noisy=True).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class FactorizedDensity(EntropyModel):
    """One learned density per code channel (see the module docstring). likelihood(y) of codes (N, C, L): N
    items, C channels, L positions per channel (the code map's pixels for resnet; 1 for a vector code, each
    dimension its own channel)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *FILTERS, 1)
        scale = INIT_SCALE ** (1 / (len(widths) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            init = math.log(math.expm1(1 / scale / n_out))  # softplus(init) * n_out * scale == 1: unit slopes
            self.matrices.append(nn.Parameter(torch.full((channels, n_out, n_in), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, n_out, 1) - 0.5))
            if k < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, n_out, 1)))
        # the integer tables (see update_tables): each channel's lowest symbol value, its symbols' count (escape
        # included), and frequencies in units of 2**PROB_BITS (zero beyond count)
        self.register_buffer("offset", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("count", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("frequencies", torch.zeros(channels, TABLE, dtype=torch.int32))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The cumulative's logits at x (C, 1, M): (C, 1, M), increasing in x."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)  # slope 1 + tanh(a)(1 - tanh^2 x) > 0
        return x

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """P(round(y) == y) for integer y, or the density of y + noise for noisy y: (N, C, L), at least
        LIKELIHOOD_FLOOR."""
        n, c, length = y.shape
        v = y.transpose(0, 1).reshape(c, 1, n * length)
        lower, upper = self.logits(v - 0.5), self.logits(v + 0.5)
        # c(upper) - c(lower) computed on the side of the sigmoid where it does not round to 1 - 1
        flip = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(flip * upper) - torch.sigmoid(flip * lower)).abs()
        return p.clamp_min(LIKELIHOOD_FLOOR).reshape(c, n, length).transpose(0, 1)

    def bits(self, y: torch.Tensor, noisy: bool = False) -> torch.Tensor:
        """Each item's cost in bits under the density, y (N, C, ...): (N,), in float32 even under bf16 autocast
        (the tails' probabilities need it)."""
        with torch.autocast(y.device.type, enabled=False):
            return -torch.log2(self.likelihood(self._noise(y.flatten(2).float(), noisy))).sum(dim=(1, 2))

    def symbols(self, maps: list[torch.Tensor]) -> list[Symbols]:
        """One group: position by position, a table per channel."""
        rows = torch.cat([m.reshape(self.channels, -1).T for m in maps]).long().numpy()  # (positions, C)
        return [Symbols(rows.reshape(-1), np.tile(np.arange(self.channels), len(rows)), self.tables())]

    def from_symbols(self, read: Reader, sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        positions = [math.prod(size) for size in sizes]
        values = read(np.tile(np.arange(self.channels), sum(positions)), self.tables())
        rows = torch.from_numpy(values.reshape(-1, self.channels).T.astype(np.float32)).split(positions, dim=1)
        return [r.reshape(self.channels, *size) for r, size in zip(rows, sizes, strict=True)]

    @torch.no_grad()
    def update_tables(self) -> None:
        """Refresh the integer tables from the density: for each channel, the integers from where its
        cumulative passes TAIL to where it passes 1 - TAIL (at most TABLE - 1 of them, kept around the median),
        each symbol's probability in units of 2**PROB_BITS (at least 1), and the escape symbol last with the
        mass outside the range."""
        low, median, high = (self._quantile(p).floor() for p in (TAIL, 0.5, 1 - TAIL))
        low = torch.maximum(low, median - (TABLE - 1) // 2)
        counts = (torch.minimum(high + 1, low + TABLE - 2) - low + 1).long()  # symbols before the escape
        edges = low.view(-1, 1, 1) + torch.arange(TABLE, device=low.device) - 0.5  # (C, 1, TABLE)
        cdf = torch.sigmoid(self.logits(edges))[:, 0].double().cpu()
        self.frequencies.zero_()
        for c, n in enumerate(counts.tolist()):
            self.frequencies[c, : n + 1] = torch.from_numpy(_frequencies(cdf[c, 1 : n + 1] - cdf[c, :n])).to(low.device)
        self.offset.copy_(low.int())
        self.count.copy_(counts.int() + 1)

    def _quantile(self, p: float) -> torch.Tensor:
        """Each channel's x where the cumulative is p: (C,), by bisection on its logits."""
        target = math.log(p / (1 - p))
        lo = torch.full((self.channels, 1, 1), -1.0, device=self.offset.device)
        hi = torch.full((self.channels, 1, 1), 1.0, device=self.offset.device)
        for _ in range(60):  # widen until the bracket holds the quantile
            below = self.logits(lo) > target
            above = self.logits(hi) < target
            if not (below.any() or above.any()):
                break
            lo = torch.where(below, lo * 2, lo)
            hi = torch.where(above, hi * 2, hi)
        for _ in range(40):
            mid = (lo + hi) / 2
            up = self.logits(mid) < target
            lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
        return ((lo + hi) / 2).view(-1)

    @property
    def has_tables(self) -> bool:
        return bool((self.count > 0).all())


def _frequencies(inside: torch.Tensor) -> np.ndarray:
    """A table from the probabilities (float64) of a range of symbols: theirs, then the escape's (the mass
    outside), in units of 2**PROB_BITS summing to the coder's scale, every symbol at least 1 (int32)."""
    p = torch.cat([inside, 1 - inside.sum().view(1)]).clamp_min(0)
    weights = (p / p.sum() * 2.0**40).round().long().clamp_min(1).numpy()
    return normalize(weights).astype(np.int32)


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
    a network trained on crops' code maps sees the same on a whole photo's: with 3x3 convolutions it saw mostly
    zero padding on crops and gave 3x the bits on photos), rounded and coded first with its own factorized
    density. The decoder needs only integer additions to find each value's table (one of SCALES fixed tables):
    no floating-point network runs before the entropy decoder, so files decode the same on any machine, thread
    count or device (the cross-device failures of learned hyperpriors come from a float synthesis network
    computing the scales). base is learned as a
    float and used rounded (straight through) so training sees the same levels files are coded with. The side
    information lets the scales follow an image's regions (flat sky, texture, edges) and each image's own
    statistics, which one density per channel cannot. (Laplace, not the paper's Gaussian: with side information
    per 4x4 block and group of channels the codes stay heavy-tailed; on a validation photo's codes the best
    single scale per channel costs 1.18 bits per pixel as a Gaussian and 1.04 as a Laplace.)"""

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
        are coded with (counted unclamped, the estimate of a photo with large dark regions was 2% below its
        file)."""
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
            table = _frequencies(_laplace_mass(values, scales[k]))
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
