"""A dataset read and split: load(source) -> Splits(train, test), a part held out for testing, the scaling fitted on
the training part; from_array, load_config (from a run's data options), load_photos, info."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..config import DataConfig
from ..errors import AekitError, check
from . import arrays, images, registry
from .datasets import Crops, Dataset, MappedDataset, Photos
from .registry import BUILTINS, Builtin, Raw, builtin, format_for, many_files
from .scaling import UINT8, Scaling, check_raw_finite, choose_scaling

SPLITS = ("all", "train", "test")


class Splits(NamedTuple):
    """A dataset's training part and its held-out (test) part (None when nothing is held out)."""

    train: Dataset
    test: Dataset | None

    def part(self, split: str, named: str, strict: bool = True) -> tuple[Dataset, str]:
        """(items, which part) for split "all", "train" or "test". Asked for the test part of data that holds
        nothing out: an error naming the data as named, or with strict False all of it."""
        check(split in SPLITS, f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split == "train":
            return self.train, "train"
        if split == "test":
            if self.test is not None:
                return self.test, "test"
            check(not strict, f"{named}: has no test part; use split all")
            return self.train, "all (nothing was held out)"
        return (self.train if self.test is None else self.train.join(self.test)), "all"


def load(
    source: str | os.PathLike = "mnist",
    *,
    test_split: float | None = None,
    size: tuple[int, int] | None = None,
    label_column: str | None = None,
    split_seed: int = 0,
    classes: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    scaling: Scaling | None = None,
    val_split: float | None = None,
    crop: tuple[int, int] | None = None,
    color_jitter: float = 0.0,
) -> Splits:
    """Load a built-in dataset ("mnist", "digits") or the user's file/folder as train/test Splits.

    Paths: a folder of images, .npy/.npz arrays, a .csv table or an IDX file. For the user's data a seeded
    random test_split (default 0.1; its old name val_split works too) is held out; built-ins use their own test
    split unless test_split is given. classes keeps only the items with those labels. crop=(h, w): images of
    any sizes as Crops (see DataConfig.crop, and color_jitter). scaling, when given (a
    trained run's), is used for tables and for images that are neither uint8 nor already in [0, 1], instead of
    fitting one.
    """
    check(test_split is None or val_split is None, "give test_split (or its old name val_split), not both")
    cfg = DataConfig(
        str(source),
        val_split if test_split is None else test_split,
        tuple(size) if size else None,
        label_column,
        split_seed,
        tuple(map(str, classes or ())) or None,
        tuple(crop) if crop else None,
        color_jitter,
    )
    return load_config(cfg, data_dir=data_dir, scaling=scaling)


def from_array(x: np.ndarray, scaling: Scaling | None = None, name: str = "array") -> Splits:
    """An array of items in their own units (images (N, H, W[, C]) or (N, C, H, W), a table (N, D)) as Splits with
    nothing held out, prepared like a file of it: uint8 pixels /255, [0, 1] images as they are, tables with
    scaling (a trained run's) or one fitted on them."""
    check(isinstance(x, np.ndarray), f"{name}: expected a numpy array, got {type(x).__name__}")
    return _make_splits(_layout(Path(name), x), None, name, None, DataConfig(name, 0.0), None, scaling)


PHOTO_CROP = 64  # the side of the crops a fully convolutional model trains on where --crop is left out


def with_photo_crop(cfg: DataConfig) -> DataConfig:
    """cfg for a fully convolutional model (one that takes images of any size): where neither crop nor size is
    given and the source is image files of several sizes or larger than PHOTO_CROP (photos), crops of
    PHOTO_CROP x PHOTO_CROP, or of the smallest image's side where that is less; cfg as it is otherwise."""
    if cfg.crop is not None or cfg.size is not None or builtin(cfg.source) is not None:
        return cfg
    path = Path(cfg.source).expanduser()
    if not (path.exists() or registry.is_glob(path)) or "crop" not in format_for(path).options:
        return cfg
    sizes = np.array(images.image_sizes(path))
    if len(np.unique(sizes, axis=0)) == 1 and sizes.max() <= PHOTO_CROP:
        return cfg  # images of one size that a crop would not cut: trained whole
    return dataclasses.replace(cfg, crop=tuple(int(min(PHOTO_CROP, side)) for side in sizes.min(axis=0)))


def load_config(cfg: DataConfig, data_dir: str | os.PathLike | None = None, scaling: Scaling | None = None) -> Splits:
    """load() from a DataConfig (the "data" section of a run's config)."""
    name = cfg.source
    known = builtin(name)
    if known is not None:
        return _builtin_splits(known, cfg, data_dir, scaling)
    path = Path(name).expanduser()
    if not path.exists() and not registry.is_glob(path):
        raise AekitError(f"unknown dataset {name!r}: not a built-in ({', '.join(BUILTINS)}) and no such file or folder")
    x, y, classes, names = read_path(path, cfg)
    keep = class_mask(y, classes, cfg.classes, path.name) if cfg.classes is not None else None
    if isinstance(x, images.ImageList):
        return _crop_splits(x, y, path.name, classes, cfg, names, keep)
    mapped = x if isinstance(x, arrays.MappedArray) else None
    if mapped is not None:
        x = _layout(path, mapped.array)
    return _make_splits(x, y, path.name, classes, cfg, None, scaling, mapped, names, keep)


def load_photos(path: Path, size: tuple[int, int] | None = None) -> Photos:
    """Every image of an image file or folder (labelled by subfolder, if any) at its own size, or resized to
    size: Photos, nothing held out."""
    if many_files(path):
        files, names, y, classes = images.image_files(path)
    else:
        check(path.suffix.lower() in images.IMAGE_SUFFIXES, f"{path}: not an image file or folder")
        files, y, classes, names = [path], None, None, [path.name]
    pixels = images.read_image_list(files, path, size)
    labels = torch.from_numpy(y) if y is not None else None
    cls = tuple(classes) if classes else None
    return Photos.of(pixels, y=labels, name=path.name, scaling=UINT8, classes=cls, item_names=tuple(names))


def _builtin_splits(known: Builtin, cfg: DataConfig, data_dir, scaling: Scaling | None) -> Splits:
    """A built-in dataset's own train and test parts (or a test_split held out of its train part)."""
    for option in ("size", "label_column", "crop"):
        flag = "--" + option.replace("_", "-")
        check(getattr(cfg, option) is None, f"{flag} applies to files and folders; {known.name} is a built-in dataset")
    x_train, y_train, x_test, y_test, fixed = known.read(data_dir)
    fixed = Scaling(*fixed) if fixed is not None else None
    if cfg.test_split is not None:  # hold out from the training part; the official test split stays unused
        x, y, test_idx = _layout(Path(known.name), x_train), y_train.astype(np.int64), None
    else:
        x = _layout(Path(known.name), np.concatenate([x_train, x_test]))
        y, test_idx = (
            np.concatenate([y_train, y_test]).astype(np.int64),
            np.arange(len(x_train), len(x_train) + len(x_test)),
        )
    keep = class_mask(y, None, cfg.classes, known.name) if cfg.classes is not None else None
    return _make_splits(x, y, known.name, None, cfg, test_idx, scaling or fixed, keep=keep)


def class_mask(
    y: np.ndarray | None, names: list[str] | None, wanted: tuple[str, ...], name: str, required: bool = True
) -> np.ndarray:
    """Which items have a label in wanted (label numbers, or class names when the data has them); with required,
    an error when none has."""
    check(y is not None, f"{name}: has no labels, so data.classes cannot select items")
    labels = []
    for v in wanted:
        if names and v in names:
            labels.append(names.index(v))
        else:
            try:
                labels.append(int(v))
            except ValueError:
                raise AekitError(f"data.classes: {v!r} is not a label of {name}") from None
    keep = np.isin(y, labels)
    check(keep.any() or not required, f"{name}: no items with labels {', '.join(wanted)}")
    return keep


def read_path(path: Path, cfg: DataConfig) -> Raw:
    """Read the user's data at path with its registered format into raw arrays: images (N, C, H, W) or tables
    (N, D); a large .npy file comes back as a arrays.MappedArray instead."""
    fmt = format_for(path)
    for option in ("size", "label_column", "crop"):
        flag = "--" + option.replace("_", "-")
        check(getattr(cfg, option) is None or option in fmt.options, f"{flag} does not apply to {path.name}")
    x, y, classes, names = fmt.read(path, cfg)
    if isinstance(x, arrays.MappedArray):
        return Raw(x)
    x = x if isinstance(x, images.ImageList) else _layout(path, x)  # first: a 0-d array has no items to count
    check(names is None or len(names) == len(x), f"{path}: the format named {len(names or ())} of {len(x)} items")
    return Raw(x, _labels(path, y, len(x)), classes, names)


def _layout(path: Path, x: np.ndarray) -> np.ndarray:
    """Arrays as tables (N, D) or channels-first images (N, C, H, W)."""
    check(x.dtype.kind in "biuf", f"{path}: expected a numeric array, got dtype {x.dtype}")
    check(x.ndim >= 1, f"{path}: holds a single number; expected a table (N, D) or images (N, H, W[, C])")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        channels_first, channels_last = x.shape[1] in (1, 3, 4), x.shape[3] in (1, 3, 4)
        if channels_last and not channels_first:
            return x.transpose(0, 3, 1, 2)
        check(
            channels_first,
            f"{path}: cannot tell the channels of images shaped {list(x.shape)}; "
            "expected (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4",
        )
        return x
    check(x.ndim == 2, f"{path}: expected a table (N, D) or images (N, H, W[, C]), got shape {list(x.shape)}")
    return x


def _labels(path: Path, y: np.ndarray | None, n: int) -> np.ndarray | None:
    if y is None:
        return None
    check(y.shape == (n,), f"{path}: labels have shape {list(y.shape)}, expected ({n},)")
    check(y.dtype.kind in "iub", f"{path}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _make_splits(
    raw: np.ndarray,
    y: np.ndarray | None,
    name: str,
    classes: list[str] | None,
    cfg: DataConfig,
    test_idx: np.ndarray | None,
    scaling: Scaling | None,
    mapped: arrays.MappedArray | None = None,
    item_names: list[str] | None = None,
    keep: np.ndarray | None = None,
) -> Splits:
    """Validate raw data, split it, fit scaling on the training part, and build Datasets (MappedDatasets
    over a memory-mapped file, which is then only ever read in chunks). keep (data.classes): the items kept in
    each part, chosen after the split, so that every item is held out or not whatever classes a run keeps."""
    n = len(raw)
    check(n > 0, f"{name}: no items")
    check(all(s > 0 for s in raw.shape[1:]), f"{name}: items of empty shape {list(raw.shape[1:])}")
    release = mapped.release if mapped is not None else lambda: None
    check_raw_finite(raw, name, release)
    parts = _parts(n, cfg, test_idx, keep, name)
    scaling = choose_scaling(raw, parts[0], scaling, name, release)
    y_t = torch.from_numpy(y) if y is not None else None
    cls = tuple(classes) if classes else None
    if mapped is not None:
        train, test = (
            MappedDataset(raw, y_t[i] if y_t is not None else None, name, scaling, cls, rows=i, source=mapped)
            for i in parts
        )
        return Splits(train, test if len(test) else None)
    if raw.dtype == np.uint8 and scaling == UINT8:
        x = torch.from_numpy(np.ascontiguousarray(raw))  # kept as uint8, scaled per batch
    else:
        x = torch.from_numpy(scaling.apply(raw))
    train, test = (
        Dataset(x[i], y_t[i] if y_t is not None else None, name, scaling, cls, _pick(item_names, i)) for i in parts
    )
    return Splits(train, test if len(test) else None)


def _parts(n: int, cfg: DataConfig, test_idx: np.ndarray | None, keep: np.ndarray | None, name: str) -> list:
    """[training rows, test rows] of n items: test_idx, or a seeded random cfg.test_split (default 0.1) of them;
    then only the kept items (data.classes) of each."""
    if cfg.test_split is not None or test_idx is None:
        frac = 0.1 if cfg.test_split is None else cfg.test_split
        n_test = int(round(n * frac))
        check(n - n_test >= 1, f"{name}: test_split {frac} leaves no training items out of {n}")
        perm = np.random.default_rng(cfg.split_seed).permutation(n)
        test_idx = np.sort(perm[:n_test])
    train_mask = np.ones(n, dtype=bool)
    train_mask[test_idx] = False
    parts = [np.flatnonzero(train_mask), test_idx]
    if keep is not None:
        parts = [i[keep[i]] for i in parts]
        check(len(parts[0]) > 0, f"{name}: none of the kept classes' items is in the training part")
    return parts


def _crop_splits(images: images.ImageList, y, name: str, classes, cfg: DataConfig, names, keep) -> Splits:
    """Splits of Crops: the images are held out or not whole, then cut into crops."""
    h, w = cfg.crop
    small = np.flatnonzero((images.sizes[:, 0] < h) | (images.sizes[:, 1] < w))
    if small.size:
        i = int(small[0])
        raise AekitError(
            f"{names[i] if names else name}: is {images.sizes[i, 0]}x{images.sizes[i, 1]}, smaller than the crop "
            f"{h}x{w}; use a smaller --crop (or --size to resize every image first)"
        )
    parts = _parts(len(images), cfg, None, keep, name)
    labels = torch.from_numpy(y) if y is not None else None
    cls = tuple(classes) if classes else None
    train, test = (Crops.of(images, rows, (h, w), labels, name=name, scaling=UINT8, classes=cls) for rows in parts)
    return Splits(dataclasses.replace(train, color_jitter=cfg.color_jitter), test if len(test) else None)


def _pick(names: list[str] | None, idx: np.ndarray) -> tuple[str, ...] | None:
    return tuple(names[j] for j in idx) if names is not None else None


def info(source: str | os.PathLike, data_dir: str | os.PathLike | None = None, **options) -> dict:
    """A summary of a dataset: kind, item shape, sizes of the splits, value range, labels."""
    train, test = load(source, data_dir=data_dir, **options)
    if isinstance(train, Photos):  # their uint8 pixels, no float copy
        low, high = (float(v) / 255 for v in train.x.aminmax())
    else:
        x = train.floats()
        low, high = float(x.min()), float(x.max())
    summary = {
        "name": train.name,
        "kind": "images" if train.is_image else "table",
        "item_shape": list(train.item_shape),
        **({"images": int(train.tiles[:, 0].unique().numel())} if isinstance(train, Crops) else {}),
        "train": len(train),
        "test": len(test) if test is not None else 0,
        "stored_as": str(train.x.dtype).replace("torch.", ""),
        "scaled_range": [low, high],
        "labels": None,
    }
    if train.y is not None:
        values, counts = torch.unique(train.y, return_counts=True)
        names = train.classes or [str(int(v)) for v in values]
        summary["labels"] = {
            names[int(v)] if train.classes else str(int(v)): int(c) for v, c in zip(values, counts, strict=True)
        }
    return summary
