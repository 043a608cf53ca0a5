"""A static rANS coder (Duda 2013) over integer frequency tables (aekit.frequencies).

Symbols are coded in order, each with its own table: row by row and column by column where column j uses table
freqs[j], or a table chosen per symbol (tables: one index per symbol). State: 32 bits, renormalized a byte at a
time; probabilities in units of 2**PROB_BITS. Plain Python: its speed is measured by bench/ (docs/benchmarks.md).
"""

from __future__ import annotations

import array

import numpy as np

from ..errors import AekitError
from ..frequencies import PROB_BITS, PROB_SCALE
from ..progress import chunks

RANS_L = 1 << 23  # lower bound of the normalized state; the state stays in [RANS_L, 2**31)
MAX_SYMBOLS = 1 << 12  # bits per dimension up to 12, far below PROB_SCALE


def encode(q: np.ndarray, freqs: np.ndarray, tables: np.ndarray | None = None) -> bytes:
    """rANS-encode symbols with tables freqs (T, S): q (N, D) with table j for column j (tables None), or q (M,)
    with table tables[i] for symbol i. Returns the byte stream."""
    q, tables = _per_symbol(q, freqs, tables)
    coded = freqs.max(axis=1) < PROB_SCALE  # a table whose one symbol has all of PROB_SCALE costs nothing
    keep = coded[tables]
    symbols, which = q[keep].tolist(), tables[keep].tolist()
    f, c = freqs.tolist(), _cumulative(freqs).tolist()
    out = bytearray()
    x = RANS_L
    for i in range(len(symbols) - 1, -1, -1):  # rANS codes backwards so that the decoder reads forwards
        j, s = which[i], symbols[i]
        fs = f[j][s]
        x_max = ((RANS_L >> PROB_BITS) << 8) * fs
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // fs << PROB_BITS) + x % fs + c[j][s]
    out += x.to_bytes(4, "little")
    out.reverse()
    return bytes(out)


def decode(data: bytes, n: int, freqs: np.ndarray, tables: np.ndarray | None = None) -> np.ndarray:
    """Inverse of encode: the (n, D) symbols (int16) with a table per column, or, given tables (n,), the n
    symbols. AekitError if data is not a stream of exactly that.

    Memory: 2 bytes a symbol, and 8 more a symbol whose table costs bits (a table whose one symbol has all of
    PROB_SCALE costs none: its symbols are filled in, never listed). Time: proportional to the symbols whose
    table costs bits, shown on a terminal for long streams.
    """
    coded = freqs.max(axis=1) < PROB_SCALE
    # Each symbol costs at least this many bits, however likely: a stream too short for the symbols is refused
    # before any work (a small file claiming billions of items would otherwise run for hours).
    least = np.log2(PROB_SCALE / np.maximum(freqs.max(axis=1), 1))
    if tables is None:  # a table per column: counted per column, not per symbol
        columns = np.flatnonzero(coded)
        bits = n * float(least[columns].sum())
        order = columns.tolist()
    else:
        keep = np.flatnonzero(coded[tables])
        bits = float(least[tables[keep]].sum())
        order = tables[keep].tolist()
    if bits * 0.99 > 8 * len(data) + 64:
        raise AekitError(f"the coded latents are too short for the {n} items the file claims: it is corrupt")
    used = np.unique(np.asarray(order, dtype=np.int64))
    lookup = {  # table -> (frequencies, cumulative, slot -> symbol)
        j: (freqs[j].tolist(), cum.tolist(), np.repeat(np.arange(freqs.shape[1]), freqs[j]).tolist())
        for j, cum in zip(used.tolist(), _cumulative(freqs[used]), strict=True)
    }
    which = [lookup[j] for j in order] * (n if tables is None else 1)
    symbols = array.array("h", bytes(2 * len(which)))
    mask = PROB_SCALE - 1
    k = 0
    try:
        x, pos = int.from_bytes(data[:4], "big"), 4
        for part in chunks(len(which), 1 << 18, "decoding latents"):
            for f, c, slots in which[part.start : part.stop]:
                slot = x & mask
                s = slots[slot]
                symbols[k] = s
                k += 1
                x = f[s] * (x >> PROB_BITS) + slot - c[s]
                while x < RANS_L:
                    x = (x << 8) | data[pos]
                    pos += 1
    except IndexError:
        raise AekitError("the coded latents end early: the file is truncated or corrupt") from None
    if x != RANS_L or pos != len(data):
        raise AekitError("the coded latents do not decode cleanly: the file is corrupt")
    decoded = np.frombuffer(symbols, np.int16)
    if tables is None:  # symbols whose table costs nothing are its one symbol
        out = np.empty((n, freqs.shape[0]), np.int16)
        out[:] = freqs.argmax(axis=1)
        out[:, columns] = decoded.reshape(n, len(columns))
        return out
    out = freqs.argmax(axis=1)[tables].astype(np.int16)
    out[keep] = decoded
    return out


def _per_symbol(q: np.ndarray, freqs: np.ndarray, tables: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Symbols q and their tables, flat: a table per column of q (N, D) where tables is None."""
    if tables is None:
        return q.reshape(-1), np.tile(np.arange(freqs.shape[0]), len(q))
    return q.reshape(-1), tables.reshape(-1)


def _cumulative(freqs: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((freqs.shape[0], 1), np.int64), np.cumsum(freqs, axis=1)[:, :-1]], axis=1)
