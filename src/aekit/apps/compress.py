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
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from .. import io as aio
from .. import metrics as M
from ..data.datasets import UINT8, Scaling
from ..data.sources import check_load_size
from ..errors import AekitError, check
from ..run import Run
from . import coding, decode_all, encode_all, open_run, read_input, refuse_existing, to_raw, write_array

MAGIC, VERSION = b"AEKZ", 1
_U32 = struct.Struct("<I")
MAX_BITS = 12


@dataclass(frozen=True)
class Quantized:
    """Latent codes as integers: z ~= lo + q * step, per dimension. q: (N, D) int64; lo, step: (D,) float32."""

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


def compress(run: Run | str | os.PathLike, x: torch.Tensor, bits: int = 8, scaling: Scaling | None = None) -> bytes:
    """Items x (N, ...) in [0, 1], shaped as the model's input, -> the bytes of an .aez file."""
    run = open_run(run)
    model = run.model
    shape = tuple(model.config.input_shape)
    code = quantize(encode_all(model, x), bits)
    freqs = coding.frequency_tables(code.q, 1 << bits)
    header = {
        "model": model.name,
        "model_sha256": weights_sha256(model),
        "run": str(run.path.resolve()),
        "items": len(x),
        "item_shape": list(shape),
        "scaling": (scaling or run.scaling).to_dict(),
        "latent_dim": code.q.shape[1],
        "bits": bits,
        "lo": code.lo.tolist(),
        "step": code.step.tolist(),
        "coder": "rans",
    }
    parts = [json.dumps(header, separators=(",", ":")).encode(), zlib.compress(freqs.astype("<u2").tobytes(), 9)]
    parts.append(coding.encode(code.q, freqs))
    body = MAGIC + bytes([VERSION]) + b"".join(_U32.pack(len(p)) + p for p in parts)
    return body + _U32.pack(zlib.crc32(body))


def read_aez(data: bytes) -> tuple[dict, Quantized]:
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
    header = _check_header(parts[0])
    d, n_symbols = header["latent_dim"], 1 << header["bits"]
    expected = d * n_symbols * 2
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(parts[1], expected + 1)
    except zlib.error:
        raise AekitError("the .aez file's frequency tables are corrupt") from None
    check(len(raw) == expected, "the .aez file's frequency tables have the wrong size")
    freqs = np.frombuffer(raw, "<u2").astype(np.int64).reshape(d, n_symbols)
    check(bool((freqs.sum(1) == coding.PROB_SCALE).all()), "the .aez file's frequency tables are corrupt")
    n = header["items"]
    check_load_size(n * (16 * d + 4 * math.prod(header["item_shape"])), "the .aez file", f"decoding {n} items")
    q = coding.decode(parts[2], n, freqs)
    lo, step = (np.asarray(header[k], np.float32) for k in ("lo", "step"))
    return header, Quantized(q, lo, step, header["bits"])


def _check_header(raw: bytes) -> dict:
    try:
        h = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AekitError("the .aez file's header is not valid JSON") from None
    keys = {"model", "model_sha256", "run", "items", "item_shape", "scaling", "latent_dim", "bits", "lo", "step"}
    check(isinstance(h, dict) and keys <= set(h), "the .aez file's header lacks fields")

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    d = h["latent_dim"]
    ok = all(count(h[k]) for k in ("items", "latent_dim", "bits")) and h["bits"] <= MAX_BITS
    ok = ok and isinstance(h["item_shape"], list) and all(map(count, h["item_shape"]))
    for key in ("lo", "step"):
        v = h[key]
        ok = ok and isinstance(v, list) and len(v) == d
        ok = ok and all(isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in v)
    check(ok and h.get("coder") == "rans", "the .aez file's header has invalid values")
    Scaling.from_dict(h["scaling"])
    return h


def decompress(data: bytes, run: Run | str | os.PathLike | None = None) -> tuple[torch.Tensor, dict]:
    """The bytes of an .aez file -> (decoded items (N, ...) in [0, 1], header).

    run: the run whose model made the file (default: the run folder named in the file). A file made with
    other weights is refused.
    """
    header, code = read_aez(data)
    run = open_run(run if run is not None else header["run"])
    check(
        weights_sha256(run.model) == header["model_sha256"],
        f"the .aez file was made with another model than the one in {run.path} (weights hash differs)",
    )
    check(
        list(run.model.config.input_shape) == header["item_shape"] and run.model.config.latent_dim == code.q.shape[1],
        "the .aez file does not match this model's shapes",
    )
    return decode_all(run.model, dequantize(code)), header


def compress_file(
    run: Run | str | os.PathLike,
    source: str,
    out: str | os.PathLike,
    bits: int = 8,
    split: str = "all",
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Compress the items of source (any data aekit reads) into the .aez file out; returns a size/quality report."""
    run = open_run(run)
    out = refuse_existing(out, force)
    items = read_input(run, source, split, data_dir)
    x = items.floats()
    blob = compress(run, x, bits, items.scaling)
    x_hat = decode_all(run.model, dequantize(read_aez(blob)[1]))
    raw_bytes = math.prod(items.item_shape) * (1 if items.scaling == UINT8 else 4)
    aio.write_bytes(out, blob)
    quality = M.summarize(M.squared_errors(x, x_hat), math.prod(items.item_shape))
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
    refuse_existing(out, force)
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror})") from None
    x_hat, header = decompress(data, run)
    written = write_array(out, to_raw(x_hat, Scaling.from_dict(header["scaling"])), force)
    return {"output": str(written), "items": header["items"], "item_shape": header["item_shape"]}
