"""Compression: items -> quantized, entropy-coded latent codes in an .aez file, and back.

Each code dimension is quantized uniformly over its range in the file (2**bits levels), and the integers
are coded with a static rANS coder whose per-dimension tables travel in the file. The layout is in
docs/formats.md; decoding checks the magic, the version, a CRC-32 of the whole file and the SHA-256 of
the model's weights before it trusts anything else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from .. import disk, metrics
from ..config import from_dict, to_dict
from ..data.datasets import UINT8, Scaling
from ..disk import Output
from ..errors import AekitError, check
from ..limits import check_load_size
from ..run import Run, open_run
from . import ARRAY_KINDS, as_items, coding, decode_all, encode_all, to_raw, write_array

MAGIC, VERSION = b"AEKZ", 1
_U32 = struct.Struct("<I")
MAX_BITS = 12


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


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of a model's weights (names, dtypes, shapes and values), independent of how they were saved."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{list(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Header:
    """The JSON header of an .aez file (docs/formats.md), checked field by field when a file is read."""

    model: str
    model_sha256: str
    run: str
    items: int
    item_shape: tuple[int, ...]
    scaling: Scaling
    latent_dim: int
    bits: int
    lo: tuple[float, ...]
    step: tuple[float, ...]
    coder: str = "rans"

    def __post_init__(self) -> None:
        where = "the .aez file's header"
        check(re.fullmatch(r"[0-9a-f]{64}", self.model_sha256) is not None, f"{where}: model_sha256 is not a hash")
        check(self.items >= 1 and self.latent_dim >= 1, f"{where}: items and latent_dim must be at least 1")
        shape = self.item_shape
        check(len(shape) in (1, 3) and all(s >= 1 for s in shape), f"{where}: item_shape {list(shape)} is not a shape")
        check(1 <= self.bits <= MAX_BITS, f"{where}: bits must be between 1 and {MAX_BITS}, got {self.bits}")
        check(self.coder == "rans", f"{where}: unknown coder {self.coder[:20]!r}")
        check(
            len(self.lo) == len(self.step) == self.latent_dim,
            f"{where}: lo and step must hold latent_dim ({self.latent_dim}) numbers each",
        )
        top = np.asarray(self.lo, np.float64) + np.asarray(self.step, np.float64) * ((1 << self.bits) - 1)
        ok = (
            all(s > 0 for s in self.step)
            and np.all(np.abs(self.lo) <= FLOAT32_MAX)
            and np.all(np.abs(top) <= FLOAT32_MAX)
        )
        check(bool(ok), f"{where}: lo and step give code values beyond float32 (or a step <= 0)")
        features = self.scaling.features
        check(
            features is None or (len(shape) == 1 and features == shape[0]),
            f"{where}: a scaling of {features} features does not fit items of shape {list(shape)}",
        )


def compress(run: Run | str | os.PathLike, x, bits: int = 8, scaling: Scaling | None = None) -> bytes:
    """Items x -> the bytes of an .aez file. x: a tensor of items in [0, 1], or a numpy array, a dataset name or a
    path (see as_items); scaling: how the file's decoded items go back to the data's units (default the run's)."""
    run = open_run(run)
    model = run.model
    code = quantize(encode_all(model, as_items(run, x)), bits)
    freqs = coding.frequency_tables(code.q, 1 << bits)
    header = Header(
        model=model.name,
        model_sha256=weights_sha256(model),
        run=str(run.path.resolve()),
        items=len(x),
        item_shape=tuple(model.config.input_shape),
        scaling=scaling or run.scaling,
        latent_dim=code.q.shape[1],
        bits=bits,
        lo=tuple(code.lo.tolist()),
        step=tuple(code.step.tolist()),
    )
    parts = [json.dumps(to_dict(header), separators=(",", ":")).encode()]
    parts += [zlib.compress(freqs.astype("<u2").tobytes(), 9), coding.encode(code.q, freqs)]
    body = MAGIC + bytes([VERSION]) + b"".join(_U32.pack(len(p)) + p for p in parts)
    return body + _U32.pack(zlib.crc32(body))


def read_aez(data: bytes) -> tuple[Header, Quantized]:
    """Parse and check an .aez file's bytes: (its header, its quantized codes). AekitError if anything is off."""
    check(len(data) >= 5 + 4 and data[:4] == MAGIC, "not an .aez file (no AEKZ magic)")
    check(data[4] == VERSION, f"an .aez file of format version {data[4]}; this aekit reads version {VERSION}")
    check(
        len(data) >= 5 + 3 * 4 + 4 and _U32.unpack(data[-4:])[0] == zlib.crc32(data[:-4]),
        "the .aez file is truncated or corrupt (checksum mismatch)",
    )
    parts, pos = [], 5
    for _ in range(3):
        check(pos + 4 <= len(data) - 4, "the .aez file is malformed (sections overrun it)")
        (n,) = _U32.unpack_from(data, pos)
        check(pos + 4 + n <= len(data) - 4, "the .aez file is malformed (sections overrun it)")
        parts.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    check(pos == len(data) - 4, "the .aez file is malformed (bytes after its sections)")
    header = from_dict(Header, disk.parse_json(parts[0], "the .aez file's header"), "the .aez file's header")
    d, n_symbols = header.latent_dim, 1 << header.bits
    n, values = header.items, math.prod(header.item_shape)
    # Decoded symbols (2 bytes), codes (4), the decoded items (4) and their copy in the data's units (4)
    need = n * (6 * d + 8 * values) + 2 * d * n_symbols * 8
    check_load_size(need, "the .aez file", f"decoding {n:,} items of {values:,} values")
    expected = d * n_symbols * 2
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(parts[1], expected + 1)
    except zlib.error:
        raise AekitError("the .aez file's frequency tables are corrupt") from None
    check(len(raw) == expected, "the .aez file's frequency tables have the wrong size")
    freqs = np.frombuffer(raw, "<u2").astype(np.int64).reshape(d, n_symbols)
    check(bool((freqs.sum(1) == coding.PROB_SCALE).all()), "the .aez file's frequency tables are corrupt")
    q = coding.decode(parts[2], n, freqs)
    lo, step = np.asarray(header.lo, np.float32), np.asarray(header.step, np.float32)
    return header, Quantized(q, lo, step, header.bits)


def decompress(data: bytes, run: Run | str | os.PathLike | None = None) -> tuple[torch.Tensor, dict]:
    """The bytes of an .aez file -> (decoded items (N, ...) in [0, 1], its header as a dict).

    run: the run whose model made the file (default: the run folder named in the file). A file made with
    other weights is refused.
    """
    header, code = read_aez(data)
    run = open_run(run if run is not None else header.run)
    check(
        weights_sha256(run.model) == header.model_sha256,
        f"the .aez file was made with another model than the one in {run.path} (weights hash differs)",
    )
    check(
        tuple(run.model.config.input_shape) == header.item_shape and run.model.config.latent_dim == header.latent_dim,
        "the .aez file does not match this model's shapes",
    )
    return decode_all(run.model, dequantize(code)), to_dict(header)


def compress_file(
    run: Run | str | os.PathLike,
    source: str,
    out: str | os.PathLike,
    bits: int = 8,
    split: str | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Compress the items of source (any data aekit reads) into the .aez file out; returns a size/quality report."""
    run = open_run(run)
    output = Output(out, (".aez",), force)
    items, _ = run.read(source, split, data_dir)
    x = items.floats()
    blob = compress(run, x, bits, items.scaling)
    x_hat = decode_all(run.model, dequantize(read_aez(blob)[1]))
    raw_bytes = math.prod(items.item_shape) * (1 if items.scaling == UINT8 else 4)
    output.write_bytes(blob)
    quality = metrics.summarize(metrics.squared_errors(x, x_hat), math.prod(items.item_shape))
    if items.is_image:
        quality["ssim"] = float(metrics.ssim(x, x_hat).mean())
    return {
        "output": str(out),
        "items": len(x),
        "bits": bits,
        "bytes": len(blob),
        "bytes_per_item": len(blob) / len(x),
        "raw_bytes_per_item": raw_bytes,
        "ratio": raw_bytes * len(x) / len(blob),
        **quality,
    }


def decompress_file(
    path: str | os.PathLike, out: str | os.PathLike, run: Run | str | os.PathLike | None = None, force: bool = False
) -> dict:
    """Decode the .aez file at path into out (.npz, .npy or a folder of PNGs) in the data's own units."""
    output = Output(out, ARRAY_KINDS, force)
    try:
        with open(path, "rb") as f:
            check_load_size(os.fstat(f.fileno()).st_size, path, "the .aez file")
            data = f.read()
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror or e})") from None
    x_hat, header = decompress(data, run)
    written = write_array(output, to_raw(x_hat, Scaling.from_dict(header["scaling"])))
    return {"output": str(written), "items": header["items"], "item_shape": header["item_shape"]}
