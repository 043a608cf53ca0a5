"""Format version 1: codes quantized uniformly per dimension, coded with frequency tables fitted to the codes
themselves and stored in the file (zlib-compressed uint16), for any model (no entropy model needed)."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AekitError, check
from ..frequencies import PROB_SCALE, frequency_tables
from ..limits import check_load_size
from . import rans
from .aez import MAX_BITS, Header


@dataclass(frozen=True)
class Quantized:
    """Latent codes as integers: z ~= lo + q * step, per dimension. q: (N, D) integers; lo, step: (D,) float32."""

    q: np.ndarray
    lo: np.ndarray
    step: np.ndarray
    bits: int


def quantize(z: torch.Tensor, bits: int = 8) -> Quantized:
    """Uniform quantization of codes z (N, D) to 2**bits levels spanning each dimension's range."""
    check(1 <= bits <= MAX_BITS, f"bits must be between 1 and {MAX_BITS}, got {bits}")
    check(bool(torch.isfinite(z).all()), "the model gives non-finite codes for this input")
    z = z.detach().float().cpu().numpy()
    lo, hi = z.min(0), z.max(0)
    step = np.where(hi > lo, (hi - lo) / ((1 << bits) - 1), 1.0).astype(np.float32)
    step[step <= 0] = 1.0  # a range too small for float32 steps: one level
    q = np.clip(np.rint((z - lo) / step), 0, (1 << bits) - 1).astype(np.int64)
    return Quantized(q, lo, step, bits)


def dequantize(code: Quantized) -> torch.Tensor:
    """The codes (N, D) float32 that the quantized integers stand for."""
    return torch.from_numpy(code.q).float() * torch.from_numpy(code.step) + torch.from_numpy(code.lo)


def encode(code: Quantized) -> list[bytes]:
    """The two sections of a version 1 file: the fitted tables, and the rANS stream of the codes."""
    freqs = frequency_tables(code.q, 1 << code.bits)
    return [zlib.compress(freqs.astype("<u2").tobytes(), 9), rans.encode(code.q, freqs)]


def decode(header: Header, tables: bytes, stream: bytes) -> Quantized:
    """The quantized codes of a version 1 file, from its tables and stream. AekitError if they are not that."""
    d, n_symbols = header.latent_dim, 1 << header.bits
    n, values = header.items, math.prod(header.item_shape)
    # Per code value: its symbol (2 bytes), its place in the coder's list (8) and its float (4) with the float
    # arithmetic of dequantizing (2 more); per item value: the decoded items (4), the float copy and the result of
    # putting them back in the data's units (4 + 1), and the finiteness check (1)
    need = n * (16 * d + 10 * values) + 2 * d * n_symbols * 8
    check_load_size(need, "the .aez file", f"decoding {n:,} items of {values:,} values")
    expected = d * n_symbols * 2
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(tables, expected + 1)
    except zlib.error:
        raise AekitError("the .aez file's frequency tables are corrupt") from None
    check(len(raw) == expected, "the .aez file's frequency tables have the wrong size")
    freqs = np.frombuffer(raw, "<u2").astype(np.int64).reshape(d, n_symbols)
    check(bool((freqs.sum(1) == PROB_SCALE).all()), "the .aez file's frequency tables are corrupt")
    q = rans.decode(stream, n, freqs)
    lo, step = np.asarray(header.lo, np.float32), np.asarray(header.step, np.float32)
    return Quantized(q, lo, step, header.bits)
