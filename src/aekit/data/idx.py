"""IDX, the MNIST file format (a magic giving the element type and the number of dimensions, the sizes, the
values big-endian), plain or gzip-compressed: the reader (registered for .idx and .gz) and the writer."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import AekitError, check
from ..limits import check_load_size
from .registry import Raw, register_format

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder(">").str: k for k, v in _IDX_DTYPES.items()}


def read_bounded(f, n: int, chunk: int = 1 << 24) -> bytes:
    """Read up to n bytes in chunks, so a stream that is shorter than promised costs only its length."""
    parts, left = [], n
    while left > 0:
        part = f.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def parse_idx(f, name: str) -> np.ndarray:
    """Parse an IDX stream (magic 0 0 TYPE NDIM, NDIM big-endian uint32 sizes, then the data)."""
    head = f.read(4)
    check(
        len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES and 1 <= head[3] <= 8,
        f"{name}: not an IDX file (bad magic number)",
    )
    ndim = head[3]
    dims_raw = f.read(4 * ndim)
    check(len(dims_raw) == 4 * ndim, f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
    check_load_size(nbytes, name, f"the IDX header's shape {list(dims)}")
    data = read_bounded(f, nbytes + 1)
    check(len(data) >= nbytes, f"{name}: truncated: the header promises {nbytes} bytes of data, found {len(data)}")
    check(len(data) == nbytes, f"{name}: has bytes after the data its header describes")
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed (by a .gz suffix), into a native-endian array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return parse_idx(f, str(path))
    except FileNotFoundError:
        raise AekitError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as e:
        raise AekitError(f"{path}: corrupt or truncated ({e})") from None


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as an IDX file."""
    be = array.dtype.newbyteorder(">")
    header = bytes([0, 0, _IDX_CODES[be.str], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(be).tobytes()


@register_format(".idx", ".gz", what="IDX files")
def _idx(path: Path, options) -> Raw:
    return Raw(read_idx(path))
