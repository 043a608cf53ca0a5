"""The sections of a file coded with a compressor's own entropy model (format versions 2 to 4): each group of
integers the entropy model hands out (models.entropy.Symbols) becomes two sections, the rANS stream of their
symbols and the values outside their tables' range (the escape symbol's) as little-endian int32."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check
from ..models.entropy import EntropyModel, Symbols, Tables
from . import rans

VERSIONS = {"factorized": 2, "hyperprior": 3, "meanscale": 4}  # a compressor's `entropy` option -> format version


def version(model: torch.nn.Module) -> int:
    """The format version of the files a compressor (an ae with rate_lambda) writes."""
    return VERSIONS[model.config.entropy]


def encode(entropy: EntropyModel, maps: list[torch.Tensor]) -> list[bytes]:
    """Integer code maps (C, *size) -> the file's sections, two per group of integers."""
    return [section for group in entropy.symbols(maps) for section in _stream(group)]


def decode(entropy: EntropyModel, sections: list[bytes], sizes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """The file's sections -> the code maps (C, *size) of the given sizes. AekitError if they are not that."""
    pairs = iter(zip(sections[::2], sections[1::2], strict=True))

    def read(table: np.ndarray, tables: Tables) -> np.ndarray:
        pair = next(pairs, None)
        check(pair is not None, "the .aez file has fewer sections than its entropy model codes: corrupt")
        return _unstream(pair, table, tables)

    maps = entropy.from_symbols(read, sizes)
    check(next(pairs, None) is None, "the .aez file has more sections than its entropy model codes: corrupt")
    return maps


def _stream(group: Symbols) -> list[bytes]:
    """A group of integers (M,), each coded with its table: the rANS stream of their symbols, and the values
    outside their tables' range (the escape symbol's) as int32."""
    values, table, (offset, count, freqs) = group
    symbols = values - offset[table]
    outside = (symbols < 0) | (symbols >= count[table] - 1)
    symbols = np.where(outside, count[table] - 1, symbols)
    return [rans.encode(symbols, freqs, table), values[outside].astype("<i4").tobytes()]


def _unstream(sections: tuple[bytes, bytes], table: np.ndarray, tables: Tables) -> np.ndarray:
    """Inverse of _stream: the integers (M,) coded with the given tables."""
    offset, count, freqs = tables
    stream, escaped = sections
    symbols = rans.decode(stream, len(table), freqs, table).astype(np.int64)
    outside = symbols == count[table] - 1
    check(len(escaped) == 4 * int(outside.sum()), "the .aez file's escaped values do not match its codes: corrupt")
    values = symbols + offset[table]
    values[outside] = np.frombuffer(escaped, "<i4")
    return values
