"""Registries of data sources, like the model registry: a new file format or built-in dataset is one
registered function.

    @register_format(".tsv", options=("label_column",))
    def read_tsv(path: Path, options: DataConfig) -> Raw: ...

    @register_dataset("fashion", "Fashion-MNIST, 60k train / 10k test, 28x28", status=..., fetch=...)
    def read_fashion(data_dir) -> BuiltinArrays: ...

A format reader returns raw arrays (images (N, H, W[, C]) or (N, C, H, W), tables (N, D)), labels (N,) or None,
and class names or None; aekit lays them out, checks them, splits and scales them. A built-in dataset
returns its own train and test parts (and a fixed scaling when its raw range is not self-evident).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import AekitError

FOLDER = "folder"  # the key of a format read from a folder rather than a file


class Raw(NamedTuple):
    """What a format reader returns."""

    x: Any  # np.ndarray, or an arrays.MappedArray for a file read a batch at a time
    y: np.ndarray | None = None
    classes: list[str] | None = None
    item_names: list[str] | None = None  # one per item, where items have names (the files of a folder)


class BuiltinArrays(NamedTuple):
    """What a built-in dataset returns: its train and test parts, raw, and a fixed scaling (or None)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scaling: Any = None


@dataclass(frozen=True)
class Format:
    read: Callable[..., Raw]
    options: tuple[str, ...]  # the data options it takes (size, label_column)
    what: str  # how error messages name it


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    read: Callable[[str | os.PathLike | None], BuiltinArrays]
    status: Callable[[str | os.PathLike | None], tuple[str, str]]  # data_dir -> (state, where)
    fetch: Callable[..., Path] | None = None


FORMATS: dict[str, Format] = {}
BUILTINS: dict[str, Builtin] = {}


def register_format(*keys: str, options: tuple[str, ...] = (), what: str | None = None):
    """Decorator: read(path, data_config) -> Raw reads files with these suffixes (lower case, with the dot), or
    folders for the key FOLDER. options: the data options (size, label_column) the format takes."""

    def add(read: Callable[..., Raw]) -> Callable[..., Raw]:
        for key in keys:
            if key in FORMATS:
                raise ValueError(f"file format {key!r} is registered twice")
            FORMATS[key] = Format(read, options, what or "/".join(keys) + " files")
        return read

    return add


def register_dataset(
    name: str,
    description: str,
    status: Callable[[str | os.PathLike | None], tuple[str, str]] | None = None,
    fetch: Callable[..., Path] | None = None,
):
    """Decorator: read(data_dir) -> BuiltinArrays is the built-in dataset `name`. status(data_dir) says whether
    it is present and where ("bundled" by default); fetch(data_dir, source=None, force=False, log=print) gets it."""

    def add(read: Callable[..., BuiltinArrays]) -> Callable[..., BuiltinArrays]:
        if name in BUILTINS:
            raise ValueError(f"dataset {name!r} is registered twice")
        BUILTINS[name] = Builtin(name, description, read, status or (lambda data_dir: ("bundled", "")), fetch)
        return read

    return add


def is_glob(path: Path) -> bool:
    """Whether path is a glob pattern (photos/*.jpg, photos/**/*.png) rather than a file or folder."""
    return not path.exists() and any(c in str(path) for c in "*?[")


def many_files(path: Path) -> bool:
    """Whether path names a collection of files: a folder or a glob pattern."""
    return path.is_dir() or is_glob(path)


def format_key(path: Path) -> str:
    """The registry key of path: FOLDER (a folder or a glob pattern of images), or its suffix (IDX files are
    named ...-ubyte, often without one)."""
    if many_files(path):
        return FOLDER
    if "ubyte" in path.name:
        return ".idx"
    return path.suffix.lower()


def format_for(path: Path) -> Format:
    """The registered format that reads path; AekitError naming what aekit reads if none does."""
    key = format_key(path)
    if key not in FORMATS:
        known = ", ".join(sorted({f.what for f in FORMATS.values()}))
        raise AekitError(f"{path}: unsupported file type; aekit reads {known}")
    return FORMATS[key]


def builtin(name: str) -> Builtin | None:
    """The built-in dataset called name, if there is one (and no file or folder of that name is here)."""
    return BUILTINS.get(name) if not Path(name).exists() else None


def input_paths(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files and folders that reading source touches (a built-in's folder; a path; a folder and every file in
    it; a pattern's matches): what no output of the same command may be, or hold."""
    known = builtin(str(source))
    if known is not None:
        where = Path(known.status(data_dir)[1])
        return [where] if where.exists() else []
    path = Path(source).expanduser()
    if is_glob(path):
        return [Path(p) for p in glob.glob(str(path), recursive=True)]
    if path.is_dir():
        return [path, *path.rglob("*")]
    return [path]


def default_data_dir() -> Path:
    """Where built-in datasets live: $AEKIT_DATA, else $XDG_CACHE_HOME/aekit, else ~/.cache/aekit."""
    if os.environ.get("AEKIT_DATA"):
        return Path(os.environ["AEKIT_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "aekit"
