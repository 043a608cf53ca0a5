"""Datasets held in memory as tensors, split into train and test, with the scaling that maps raw
values to the [0, 1] range every model works in."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..config import DataConfig
from ..errors import AekitError, check
from . import arrays, images, registry
from .registry import BUILTINS, Builtin, Raw, builtin, format_for, many_files


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Scaling:
    """Maps raw values into [0, 1]: x = (raw - lo) / (hi - lo), per feature (lists) or global (floats).

    Fitted on the training split and stored in the run folder, so that new data is prepared exactly
    as the training data was. lo <= hi, both finite and hi - lo finite; a constant feature has lo == hi
    (it maps to 0); a global scaling needs lo < hi.
    """

    lo: float | list[float]
    hi: float | list[float]

    def __post_init__(self) -> None:
        scalars = _number(self.lo) and _number(self.hi)
        lists = isinstance(self.lo, list) and isinstance(self.hi, list) and len(self.lo) == len(self.hi) > 0
        check(
            scalars or (lists and all(map(_number, self.lo + self.hi))),
            "scaling: lo and hi must be two finite numbers or two equally long lists of them",
        )
        lo, hi = np.asarray(self.lo, np.float64), np.asarray(self.hi, np.float64)
        with np.errstate(over="ignore"):
            span = hi - lo
        bad = np.flatnonzero(~((span >= 0) & np.isfinite(span)) | ((span == 0) & scalars))
        if bad.size:
            j = int(bad[0])
            where = f" of feature {j}" if lists else ""
            raise AekitError(
                f"scaling: the range{where} from {lo.flat[j]:g} to {hi.flat[j]:g} is "
                + ("empty or reversed" if span.flat[j] <= 0 else "wider than a float can hold")
            )

    @classmethod
    def fit(cls, raw: np.ndarray, per_feature: bool) -> Scaling:
        """Min-max scaling from raw (N, ...) values: per column when per_feature, else global."""
        if per_feature:
            return cls(raw.min(axis=0).tolist(), raw.max(axis=0).tolist())
        return cls(float(raw.min()), float(raw.max()))

    def lo_span(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.asarray(self.lo, np.float64), np.asarray(self.hi, np.float64)
        return lo, np.where(hi > lo, hi - lo, 1.0)  # a constant feature maps to 0, never to a division by 0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw values (N, ...) -> float32 in [0, 1] (values beyond the fitted range fall outside it), a chunk
        of items at a time (no float64 copy of the whole array)."""
        lo, span = self.lo_span()
        out = np.empty(raw.shape, np.float32)
        step = max(1, (16 << 20) // max(1, math.prod(raw.shape[1:])))
        with np.errstate(over="ignore"):
            for i in range(0, len(raw), step):
                out[i : i + step] = (raw[i : i + step] - lo) / span
        check(
            bool(np.isfinite(out).all()),
            "values far outside the range the scaling was fitted on (lo, hi) overflow a float32",
        )
        return out

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Values in the model's [0, 1] space (N, ...) back to raw units, float64 (inf where they overflow)."""
        lo, span = self.lo_span()
        with np.errstate(over="ignore"):
            return x.astype(np.float64) * span + lo

    def to_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        ok = isinstance(d, dict) and set(d) == {"lo", "hi"}
        check(ok, f"scaling: expected {{'lo': ..., 'hi': ...}}, got {d!r}"[:200])
        lo, hi = d["lo"], d["hi"]
        if _number(lo) and _number(hi):
            return cls(float(lo), float(hi))
        if isinstance(lo, list) and isinstance(hi, list) and all(map(_number, lo + hi)):
            return cls([float(v) for v in lo], [float(v) for v in hi])
        return cls(lo, hi)  # __post_init__ says what is wrong

    @property
    def features(self) -> int | None:
        """How many features a per-feature scaling is for (None when global)."""
        return len(self.lo) if isinstance(self.lo, list) else None


UINT8 = Scaling(0.0, 255.0)


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images x (..., C, H, W), uint8 or floats, with channels 3 (a grey image's one channel copied to red, green
    and blue) or 1 (an RGB image's luminance, ITU-R BT.601 as Pillow's convert("L") gives it); x itself where
    they already have that many."""
    have = x.shape[-3]
    if have == channels:
        return x
    check({have, channels} == {1, 3}, f"images of {have} channels cannot become {channels}; only grey and RGB do")
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    r, g, b = x.unbind(-3)
    if x.dtype == torch.uint8:  # Pillow's integer weights (out of 2**16) and rounding
        grey = ((r.int() * 19595 + g.int() * 38470 + b.int() * 7471 + 32768) >> 16).to(torch.uint8)
    else:
        grey = (r * 0.299 + g * 0.587 + b * 0.114).to(x.dtype)
    return grey.unsqueeze(-3)


@dataclass(frozen=True)
class Dataset:
    """Items in memory: images (N, C, H, W) or table rows (N, D), with optional integer labels.

    x is uint8 raw pixels (scaled by /255 per batch, which keeps MNIST at 47 MB) or float32 already in
    [0, 1]. Use `batch(idx)` or `floats()` to get model inputs; `scaling` says how raw values of this
    kind of data map to [0, 1].
    """

    x: torch.Tensor
    y: torch.Tensor | None
    name: str
    scaling: Scaling
    classes: tuple[str, ...] | None = None
    item_names: tuple[str, ...] | None = None  # each item's own name where it has one (its file in a folder)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one item: (C, H, W) for images, (D,) for tables."""
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.x.shape) == 4

    def batch(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Items at idx (a slice or a 1-d index tensor) as float32 in [0, 1]."""
        xb = self.x[idx] if isinstance(idx, slice) else self.x.index_select(0, idx)  # index_select: ~10x faster
        return xb.float().div_(255) if xb.dtype == torch.uint8 else xb

    def floats(self) -> torch.Tensor:
        """All items as float32 in [0, 1]."""
        return self.batch(slice(None))

    def training_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Items at idx as a training step sees them: batch(idx) here; random crops for Crops."""
        return self.batch(idx)

    def stored(self) -> np.ndarray:
        """All items as stored (uint8 pixels, or floats in [0, 1]), on the CPU."""
        return self.x.cpu().numpy()

    def subset(self, idx: torch.Tensor | np.ndarray) -> Dataset:
        idx = torch.as_tensor(idx, dtype=torch.long)
        y = self.y[idx] if self.y is not None else None
        names = tuple(self.item_names[i] for i in idx.tolist()) if self.item_names is not None else None
        return dataclasses.replace(self, x=self.x[idx], y=y, item_names=names)

    @property
    def device(self) -> torch.device:
        """Where the items are (batches are indexed there)."""
        return self.x.device

    def to(self, device: torch.device) -> Dataset:
        """The same items on device (a copy)."""
        return dataclasses.replace(self, x=self.x.to(device))

    def join(self, other: Dataset) -> Dataset:
        """This dataset's items followed by other's (two parts of one source)."""
        y = torch.cat([self.y, other.y]) if self.y is not None and other.y is not None else None
        names = self.item_names + other.item_names if self.item_names and other.item_names else None
        return dataclasses.replace(self, x=torch.cat([self.x, other.x]), y=y, item_names=names)

    def with_channels(self, channels: int) -> Dataset:
        """The images with 1 or 3 channels (see convert_channels), stored as before."""
        return dataclasses.replace(self, x=convert_channels(self.x, channels))


@dataclass(frozen=True)
class MappedDataset(Dataset):
    """Items left in a memory-mapped .npy file (one larger than arrays.mmap_bytes()), read a batch at a time.

    x is the mapped array (N, ...) in its raw dtype; rows are the file rows of this part's items. Each
    batch is read in file order and scaled like an in-memory Dataset's, and the pages it touched are then
    released from the process's resident memory, so training on a file larger than memory stays small.
    """

    rows: np.ndarray | None = None
    source: arrays.MappedArray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: torch.Tensor | slice) -> torch.Tensor:
        rows = self.rows[idx] if isinstance(idx, slice) else self.rows[np.asarray(idx)]
        order = np.argsort(rows, kind="stable")
        raw = np.empty((len(rows), *self.x.shape[1:]), self.x.dtype)
        raw[order] = self.x[rows[order]]
        self.source.release()  # scattered rows can map far more than they hold (a page, or more, each)
        if raw.dtype == np.uint8 and self.scaling == UINT8:
            return torch.from_numpy(raw).float().div_(255)
        return torch.from_numpy(self.scaling.apply(raw))

    def subset(self, idx: torch.Tensor | np.ndarray) -> MappedDataset:
        idx = np.asarray(idx, dtype=np.int64)
        y = self.y[torch.from_numpy(idx)] if self.y is not None else None
        return dataclasses.replace(self, y=y, rows=self.rows[idx])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device: torch.device) -> MappedDataset:
        """Itself: the items stay on disk; each batch is read, then moved."""
        return self

    def join(self, other: MappedDataset) -> MappedDataset:
        """Still on disk: the row lists joined, nothing read."""
        y = torch.cat([self.y, other.y]) if self.y is not None and other.y is not None else None
        return dataclasses.replace(self, y=y, rows=np.concatenate([self.rows, other.rows]))


@dataclass(frozen=True)
class Photos(Dataset):
    """Whole images of any sizes, one item each, kept once as uint8: what a fully convolutional model takes
    whole (tiled by the uses). x holds every image's pixels in one flat uint8 tensor, each channels first from
    its start in images. batch() stacks images of one size; image(i) gives any one.
    """

    images: torch.Tensor | None = None  # (n_images, 3) int64: start in x, height, width
    channels: int = 1

    @classmethod
    def of(cls, images: images.ImageList, **fields) -> Photos:
        table = torch.from_numpy(np.column_stack([images.starts, images.sizes]))
        return cls(x=torch.from_numpy(images.pixels), images=table, channels=images.channels, **fields)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [tuple(s) for s in self.images[:, 1:].tolist()]

    @property
    def item_shape(self) -> tuple[int, ...]:
        """(C, H, W) when all images share one size; else (C, 0, 0)."""
        sizes = set(self.sizes)
        return (self.channels, *(sizes.pop() if len(sizes) == 1 else (0, 0)))

    @property
    def is_image(self) -> bool:
        return True

    def image(self, i: int) -> torch.Tensor:
        """Image i as stored: (C, H, W) uint8."""
        start, h, w = self.images[i].tolist()
        return self.x[start : start + self.channels * h * w].view(self.channels, h, w)

    def batch(self, idx: torch.Tensor | slice) -> torch.Tensor:
        rows = range(len(self))[idx] if isinstance(idx, slice) else idx.tolist()
        check(0 not in self.item_shape, f"{self.name}: images of different sizes do not stack; take them one at a time")
        if not rows:
            return torch.zeros(0, *self.item_shape)
        return torch.stack([self.image(i) for i in rows]).float().div_(255)

    def stored(self) -> np.ndarray:
        return (self.floats() * 255).round().to(torch.uint8).cpu().numpy()

    def subset(self, idx: torch.Tensor | np.ndarray) -> Photos:
        idx = torch.as_tensor(idx, dtype=torch.long)
        y = self.y[idx] if self.y is not None else None
        names = tuple(self.item_names[i] for i in idx.tolist()) if self.item_names is not None else None
        return dataclasses.replace(self, images=self.images[idx], y=y, item_names=names)

    def to(self, device: torch.device) -> Photos:
        return dataclasses.replace(self, x=self.x.to(device), images=self.images.to(device))

    def join(self, other: Photos) -> Photos:
        check(other.x.data_ptr() == self.x.data_ptr(), "only the parts of one source join")
        y = torch.cat([self.y, other.y]) if self.y is not None and other.y is not None else None
        names = self.item_names + other.item_names if self.item_names and other.item_names else None
        return dataclasses.replace(self, images=torch.cat([self.images, other.images]), y=y, item_names=names)

    def with_channels(self, channels: int) -> Photos:
        """The images with 1 or 3 channels (see convert_channels), each kept once, uint8."""
        converted = [convert_channels(self.image(i), channels).reshape(-1) for i in range(len(self))]
        counts = torch.tensor([len(c) for c in converted], dtype=torch.int64)
        starts = torch.cumsum(counts, 0) - counts
        images = torch.column_stack([starts, self.images[:, 1:].cpu()]).to(self.images.device)
        x = torch.cat(converted) if converted else self.x[:0]
        return dataclasses.replace(self, x=x, images=images, channels=channels)


@dataclass(frozen=True)
class Crops(Photos):
    """Fixed-size crops of images of any sizes, the images kept once, as uint8 (data.crop).

    The items are tiles: a grid of non-overlapping crops in each image, centred, so that batch() is
    deterministic (the held-out part, evaluation, features). training_batch() instead draws a fresh crop from
    each tile's image, anywhere in it, flipped left-right at random, from torch's global RNG (saved with each
    checkpoint, so a resumed run draws the same crops).
    """

    tiles: torch.Tensor | None = None  # (N, 3) int64: image, top, left
    crop: tuple[int, int] = (1, 1)
    color_jitter: float = 0.0  # training crops of RGB images: channels shuffled, scaled, shifted (DataConfig)

    @classmethod
    def of(cls, images: images.ImageList, rows: np.ndarray, crop: tuple[int, int], labels, **fields) -> Crops:
        """The tiles of the images at rows of an ImageList (the x of every part of one source), labelled with
        their image's label from labels (a tensor per image, or None)."""
        h, w = crop
        tiles = []
        for i in rows.tolist():
            ih, iw = images.sizes[i].tolist()
            top, left = np.arange(ih // h) * h + (ih % h) // 2, np.arange(iw // w) * w + (iw % w) // 2
            grid = np.stack(np.meshgrid(top, left, indexing="ij"), axis=-1).reshape(-1, 2)
            tiles.append(np.column_stack([np.full(len(grid), i), grid]))
        tiles = torch.from_numpy(np.concatenate(tiles) if tiles else np.zeros((0, 3), np.int64)).long()
        y = labels[tiles[:, 0]] if labels is not None else None
        return super().of(images, y=y, tiles=tiles, crop=crop, **fields)

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return (self.channels, *self.crop)

    def batch(self, idx: torch.Tensor | slice) -> torch.Tensor:
        tiles = self.tiles[idx] if isinstance(idx, slice) else self.tiles.index_select(0, idx)
        return self._gather(tiles[:, 0], tiles[:, 1], tiles[:, 2], None)

    def training_batch(self, idx: torch.Tensor) -> torch.Tensor:
        image = self.tiles.index_select(0, idx)[:, 0]
        size = self.images.index_select(0, image)[:, 1:].cpu()
        u = torch.rand(len(idx), 3)  # top, left, flip: drawn on the CPU wherever the images are
        top = (u[:, 0] * (size[:, 0] - self.crop[0] + 1)).long()
        left = (u[:, 1] * (size[:, 1] - self.crop[1] + 1)).long()
        x = self._gather(image, top.to(image.device), left.to(image.device), (u[:, 2] < 0.5).to(image.device))
        if self.color_jitter and self.channels == 3:
            order = torch.rand(len(idx), 3).argsort(1).to(x.device)
            u = 2 * torch.rand(len(idx), 4) - 1  # three gains and one offset, each in [-1, 1] before scaling
            gains, offset = (
                (1 + self.color_jitter * u[:, :3]).to(x.device),
                (self.color_jitter / 2 * u[:, 3]).to(x.device),
            )
            x = x.gather(1, order[:, :, None, None].expand_as(x)).mul_(gains[:, :, None, None])
            x = x.add_(offset[:, None, None, None]).clamp_(0, 1)
        return x

    def _gather(self, image, top, left, flip) -> torch.Tensor:
        """The crops at (top, left) of images, flipped left-right where flip: (B, C, h, w) float32 in [0, 1]."""
        start, height, width = self.images.index_select(0, image).unbind(1)
        c, i, j = (torch.arange(n, device=image.device) for n in (self.channels, *self.crop))
        col = j.expand(len(image), -1)
        if flip is not None:
            col = torch.where(flip[:, None], self.crop[1] - 1 - col, col)
        b = (slice(None), None, None, None)  # per crop, broadcast over channel, row, column
        index = (start[b] + c[None, :, None, None] * (height * width)[b] + (top[b] + i[None, None, :, None]) * width[b]
                 + left[b] + col[:, None, None, :])  # fmt: skip
        return self.x.take(index).float().div_(255)

    def subset(self, idx: torch.Tensor | np.ndarray) -> Crops:
        idx = torch.as_tensor(idx, dtype=torch.long)
        y = self.y[idx] if self.y is not None else None
        return dataclasses.replace(self, tiles=self.tiles[idx.to(self.tiles.device)], y=y)

    def to(self, device: torch.device) -> Crops:
        return dataclasses.replace(super().to(device), tiles=self.tiles.to(device))

    def join(self, other: Crops) -> Crops:
        check(other.x.data_ptr() == self.x.data_ptr(), "only the parts of one source join")
        y = torch.cat([self.y, other.y]) if self.y is not None and other.y is not None else None
        return dataclasses.replace(self, tiles=torch.cat([self.tiles, other.tiles]), y=y)


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
    _check_finite(raw, name, release)
    parts = _parts(n, cfg, test_idx, keep, name)
    scaling = _choose_scaling(raw, parts[0], scaling, name, release)
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


def _check_finite(raw: np.ndarray, name: str, release) -> None:
    """AekitError naming the first item holding NaN or infinity, read a chunk at a time."""
    if raw.dtype.kind != "f":
        return
    start = 0
    for chunk in _chunks(raw, None, release):
        bad = ~np.isfinite(chunk)
        if bad.any():
            first = start + int(np.argwhere(bad.reshape(len(chunk), -1).any(axis=1))[0, 0])
            raise AekitError(f"{name}: NaN or infinite values (first in item {first}); clean or drop them first")
        start += len(chunk)


def _choose_scaling(raw: np.ndarray, train_rows: np.ndarray, given: Scaling | None, name: str, release) -> Scaling:
    """Pixels speak for themselves (uint8 is /255; floats already in [0, 1] stay); tables and other images take
    the given scaling (a trained run's) or one fitted on the training part: per column for tables, one range
    for all pixels of images."""
    is_image = raw.ndim == 4
    if is_image and raw.dtype == np.uint8:
        return UINT8
    if is_image and _in_unit_range(raw, release):
        return Scaling(0.0, 1.0)
    if given is not None:
        return given
    axis = 0 if not is_image else None
    lows, highs = zip(*((c.min(axis), c.max(axis)) for c in _chunks(raw, train_rows, release)), strict=True)
    low, high = np.min(lows, axis=0).astype(np.float64), np.max(highs, axis=0).astype(np.float64)
    try:
        return Scaling(low.tolist(), high.tolist()) if not is_image else Scaling(float(low), float(high))
    except AekitError as e:
        raise AekitError(f"{name}: cannot be scaled to [0, 1] ({e}); rescale or drop those values") from None


def _chunks(raw: np.ndarray, rows: np.ndarray | None, release, chunk_bytes: int = 64 << 20):
    """raw's items (or those at rows) in consecutive chunks of about chunk_bytes; release() after each."""
    n = len(raw) if rows is None else len(rows)
    step = max(1, chunk_bytes // max(1, raw[0].nbytes))
    for i in range(0, n, step):
        yield np.asarray(raw[i : i + step] if rows is None else raw[rows[i : i + step]])
        release()


def _in_unit_range(raw: np.ndarray, release) -> bool:
    return all(c.min() >= 0 and c.max() <= 1 for c in _chunks(raw, None, release))


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
