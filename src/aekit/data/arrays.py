"""Arrays: .npy files (memory-mapped where large, read a batch at a time) and .npz archives, never unpickled."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import AekitError, check
from ..limits import check_load_size, human
from .registry import Raw, register_format

ARRAY_SUFFIXES = (".npy", ".npz")


def mmap_bytes() -> int:
    """.npy files larger than this are memory-mapped rather than read: $AEKIT_MMAP_BYTES, default 1 GiB."""
    raw = os.environ.get("AEKIT_MMAP_BYTES", str(1 << 30))
    try:
        return int(raw)
    except ValueError:
        raise AekitError(f"AEKIT_MMAP_BYTES must be a whole number of bytes, got {raw!r}") from None


def _npy_header(f, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the header of the .npy stream f, read without the data."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    check(version in readers, f"{what} has an unsupported .npy version {version}")
    return readers[version](f)


class MappedArray:
    """A .npy file's array memory-mapped read-only: `array` is a view of the mapping (nothing is read until
    used); release() drops the pages this process has touched from its resident memory (they stay in the
    page cache), so reading a file larger than memory keeps the process small."""

    def __init__(self, path: Path) -> None:
        import mmap

        try:
            with open(path, "rb") as f:
                shape, fortran, dtype = _npy_header(f, str(path))
                offset = f.tell()
                size = os.fstat(f.fileno()).st_size
                check(not dtype.hasobject, f"{path}: it holds Python objects, which aekit does not unpickle")
                check(not fortran or len(shape) <= 1, f"{path}: a Fortran-order array; save it in C order")
                count = int(np.prod(shape, dtype=object))
                check(offset + count * dtype.itemsize <= size, f"{path}: truncated")
                self.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                if hasattr(mmap, "MADV_RANDOM"):  # batches are scattered rows: no read-ahead, no fault-around
                    self.mmap.madvise(mmap.MADV_RANDOM)
        except AekitError:
            raise
        except Exception as e:  # numpy parses the header with Python's tokenizer: damaged bytes raise anything
            raise AekitError(f"{path}: not a readable .npy array file ({e})") from None
        self.array = np.frombuffer(self.mmap, dtype, count, offset).reshape(shape)

    def release(self) -> None:
        import mmap

        if hasattr(mmap, "MADV_DONTNEED"):  # POSIX; elsewhere the OS pages them out when it needs to
            self.mmap.madvise(mmap.MADV_DONTNEED)


def read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read x (and labels y, if present) from .npy or .npz, never unpickling.

    In an .npz, x is the array named x, X, data, images or arr_0 (or the only one); labels are named
    y, labels, targets or arr_1.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror})") from None
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode=None if path.suffix == ".npz" else "r")
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return _pick_npz(path, loaded)
        check_load_size(loaded.nbytes, path, f"the array of shape {list(loaded.shape)}")
        check(loaded.nbytes <= size, f"{path}: truncated")
        return np.array(loaded), None
    except AekitError:
        raise
    except Exception as e:  # numpy parses the header with Python's tokenizer: damaged bytes raise anything
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "allow_pickle" in msg or "Python objects" in msg:
            msg = "it holds Python objects, which aekit does not unpickle; save plain numeric arrays"
        raise AekitError(f"{path}: not a readable {path.suffix} array file ({msg})") from None


def _pick_npz(path: Path, npz) -> tuple[np.ndarray, np.ndarray | None]:
    names = list(npz.files)
    check(names, f"{path}: the .npz file holds no arrays")
    x_name = next((n for n in ("x", "X", "data", "images", "arr_0") if n in names), None)
    if x_name is None:
        check(len(names) == 1, f"{path}: cannot tell which array is the data among {names}; name it 'x'")
        x_name = names[0]
    y_name = next((n for n in ("y", "labels", "targets", "arr_1") if n in names), None)
    for name in filter(None, (x_name, y_name)):
        _check_npz_member(path, npz.zip, name)
    x = npz[x_name]
    y = npz[y_name] if y_name else None
    return x, y


def _check_npz_member(path: Path, zf: zipfile.ZipFile, name: str) -> None:
    """Refuse a member whose declared or header-claimed size is over the load limit, or whose .npy header
    claims more data than the member holds (numpy would allocate the claimed size before reading)."""
    info = zf.getinfo(name + ".npy")
    check_load_size(info.file_size, path, f"array '{name}'")
    with zf.open(info) as f:
        shape, _, dtype = _npy_header(f, f"{path}: array '{name}'")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    check_load_size(nbytes, path, f"array '{name}' of shape {list(shape)}")
    check(nbytes <= info.file_size, f"{path}: array '{name}' is truncated (its header claims {human(nbytes)})")


@register_format(".npy", ".npz", what=".npy/.npz arrays")
def _arrays(path: Path, options) -> Raw:
    if path.suffix.lower() == ".npy" and path.stat().st_size > mmap_bytes():
        return Raw(MappedArray(path))  # read a batch at a time, never whole
    return Raw(*read_arrays(path))
