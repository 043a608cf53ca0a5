"""Entropy coding of quantized latent codes: a static rANS coder (Duda 2013) with one table per dimension.

Symbols are coded item by item, dimension by dimension; dimension j uses frequency table freqs[j]. Format
version 1 fits the tables to the codes themselves and stores them in the file; version 2 (a compressor trained
with rate_lambda) takes them from the model's entropy model (models.entropy: one per code channel, the code
map's positions as the items), fixed integers in the run. State: 32 bits, renormalized a byte at a time;
probabilities in units of 2**PROB_BITS. Written in plain Python, it codes about 6 million symbols a second
(docs/benchmarks.md), below the time of the networks around it.
"""

from __future__ import annotations

import array

import numpy as np

from ..errors import AekitError
from ..progress import chunks

PROB_BITS = 15
PROB_SCALE = 1 << PROB_BITS
RANS_L = 1 << 23  # lower bound of the normalized state; the state stays in [RANS_L, 2**31)
MAX_SYMBOLS = 1 << 12  # bits per dimension up to 12, far below PROB_SCALE


def frequency_tables(q: np.ndarray, n_symbols: int) -> np.ndarray:
    """Per-dimension frequencies (D, n_symbols) summing to PROB_SCALE, at least 1 for every symbol seen.

    q: (N, D) integer symbols in [0, n_symbols).
    """
    counts = np.stack([np.bincount(col, minlength=n_symbols) for col in q.T]).astype(np.int64)
    return np.stack([normalize(c) for c in counts])


def normalize(counts: np.ndarray) -> np.ndarray:
    """Integer counts (S,) as frequencies summing to PROB_SCALE, at least 1 for every count above 0."""
    total = int(counts.sum())
    freqs = np.maximum(counts * PROB_SCALE // total, counts > 0).astype(np.int64)
    excess = int(freqs.sum()) - PROB_SCALE
    while excess != 0:  # give the rounding error to (or take it from) the most frequent symbols
        i = int(freqs.argmax())
        change = -excess if excess < 0 else -min(excess, int(freqs[i]) - 1)  # a symbol keeps at least 1
        freqs[i] += change
        excess += change
    return freqs


def _coded(freqs: np.ndarray) -> list[int]:
    """The dimensions that cost bits: a dimension whose one symbol has all of PROB_SCALE leaves the rANS state
    unchanged in both directions, so it is skipped (its value is that symbol)."""
    return [j for j in range(freqs.shape[0]) if freqs[j].max() < PROB_SCALE]


def encode(q: np.ndarray, freqs: np.ndarray) -> bytes:
    """rANS-encode symbols q (N, D) with tables freqs (D, S); returns the byte stream."""
    coded = _coded(freqs)
    f = freqs[coded].tolist()
    c = _cumulative(freqs[coded]).tolist()
    symbols = q[:, coded].reshape(-1).tolist()
    d = len(coded)
    out = bytearray()
    x = RANS_L
    for i in range(len(symbols) - 1, -1, -1):  # rANS codes backwards so that the decoder reads forwards
        j, s = i % d, symbols[i]
        fs = f[j][s]
        x_max = ((RANS_L >> PROB_BITS) << 8) * fs
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // fs << PROB_BITS) + x % fs + c[j][s]
    out += x.to_bytes(4, "little")
    out.reverse()
    return bytes(out)


def decode(data: bytes, n: int, freqs: np.ndarray) -> np.ndarray:
    """Inverse of encode: the (n, D) symbols (int16). AekitError if data is not a stream of exactly that.

    Memory: 2 bytes a symbol. Time: proportional to n times the dimensions that cost bits, shown on a
    terminal for long streams.
    """
    coded = _coded(freqs)
    out = np.empty((n, freqs.shape[0]), np.int16)
    out[:] = freqs.argmax(axis=1)  # the dimensions that cost nothing hold their one symbol
    # Each item costs at least this many bits, however likely its symbols: a stream too short for n items
    # is refused before any work (a small file claiming billions of items would otherwise run for hours).
    min_bits = float(np.log2(PROB_SCALE / freqs[coded].max(axis=1)).sum()) if coded else 0.0
    if n * min_bits * 0.99 > 8 * len(data) + 64:
        raise AekitError(f"the coded latents are too short for the {n} items the file claims: it is corrupt")
    tables = [
        (row.tolist(), cum.tolist(), np.repeat(np.arange(len(row)), row).tolist())  # slot -> symbol
        for row, cum in zip(freqs[coded], _cumulative(freqs[coded]), strict=True)
    ]
    symbols = array.array("h", bytes(2 * n * len(coded)))
    mask = PROB_SCALE - 1
    k = 0
    try:
        x, pos = int.from_bytes(data[:4], "big"), 4
        for part in chunks(n if tables else 0, 1 << 14, "decoding latents"):
            for _ in range(part.start, part.stop):
                for f, c, lookup in tables:
                    slot = x & mask
                    s = lookup[slot]
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
    out[:, coded] = np.frombuffer(symbols, np.int16).reshape(n, len(coded))
    return out


def _cumulative(freqs: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((freqs.shape[0], 1), np.int64), np.cumsum(freqs, axis=1)[:, :-1]], axis=1)
