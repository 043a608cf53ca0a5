"""Integer probability tables: what the learned densities make (models.entropy, when a model is saved) and the
coder reads (codec.rans). A table is a row of frequencies in units of 2**PROB_BITS that sums to PROB_SCALE,
every symbol that can occur at least 1: encoder and decoder read the same integers on any machine."""

from __future__ import annotations

import numpy as np

PROB_BITS = 15
PROB_SCALE = 1 << PROB_BITS


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


def frequency_tables(q: np.ndarray, n_symbols: int) -> np.ndarray:
    """Per-dimension frequencies (D, n_symbols) summing to PROB_SCALE, at least 1 for every symbol seen.

    q: (N, D) integer symbols in [0, n_symbols).
    """
    counts = np.stack([np.bincount(col, minlength=n_symbols) for col in q.T])  # int64 (numpy's intp)
    return np.stack([normalize(c) for c in counts])
