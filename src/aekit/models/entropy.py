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
            table = table_frequencies(cdf[c, 1 : n + 1] - cdf[c, :n])
            self.frequencies[c, : n + 1] = torch.from_numpy(table).to(low.device)
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


def table_frequencies(inside: torch.Tensor) -> np.ndarray:
    """A table from the probabilities (float64) of a range of symbols: theirs, then the escape's (the mass
    outside), in units of 2**PROB_BITS summing to the coder's scale, every symbol at least 1 (int32)."""
    p = torch.cat([inside, 1 - inside.sum().view(1)]).clamp_min(0)
    weights = (p / p.sum() * 2.0**40).round().long().clamp_min(1).numpy()
    return normalize(weights).astype(np.int32)
