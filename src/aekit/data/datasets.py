"""The dataset classes: items held in memory as tensors (Dataset), a memory-mapped .npy read a batch at a time
(MappedDataset), whole photos of any sizes (Photos) and random crops of them (Crops)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import check
from . import arrays, images
from .scaling import UINT8, Scaling, convert_channels


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
