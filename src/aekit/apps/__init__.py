"""Using a trained model: compress, denoise, extract features, generate, score anomalies (one use a file).

Shared here: reading a verb's input with the run's preparation, and writing its array output whole or not
at all.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import io as aio
from ..data.datasets import UINT8, Dataset, MappedDataset, Scaling
from ..errors import check
from ..run import Run

SPLITS = ("all", "train", "test")
BATCH = 1024


def check_items(model: torch.nn.Module, x: torch.Tensor) -> None:
    """AekitError unless x holds at least one item of the model's input shape."""
    check(len(x) > 0, "no items")
    shape = tuple(model.config.input_shape)
    check(tuple(x.shape[1:]) == shape, f"items have shape {list(x.shape[1:])}, the model expects {list(shape)}")


@torch.no_grad()
def encode_all(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model.encode over x (N, ...) in batches: (N, latent_dim)."""
    check_items(model, x)
    return torch.cat([model.encode(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])


@torch.no_grad()
def decode_all(model: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """model.decode over codes z (N, latent_dim) in batches: (N, ...) in [0, 1]."""
    return torch.cat([model.decode(z[i : i + BATCH]) for i in range(0, len(z), BATCH)])


def open_run(run: Run | str | os.PathLike) -> Run:
    return run if isinstance(run, Run) else Run.open(run)


def read_input(run: Run, source: str, split: str = "all", data_dir: str | os.PathLike | None = None) -> Dataset:
    """The items of source prepared as the run's training data was, shape-checked against its model.

    split: "all" items, or only the "train" or "test" part (a built-in's own test split; for the run's own
    data file, the part it held out).
    """
    check(split in SPLITS, f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    train, test = run.load_data(str(source), data_dir)
    if split == "train":
        return train
    if split == "test":
        check(test is not None, f"{source}: has no test part; use split all")
        return test
    if test is None:
        return train
    y = torch.cat([train.y, test.y]) if train.y is not None and test.y is not None else None
    if isinstance(train, MappedDataset):  # still on disk: join the row lists, read nothing
        return dataclasses.replace(train, y=y, rows=np.concatenate([train.rows, test.rows]))
    return Dataset(torch.cat([train.x, test.x]), y, train.name, train.scaling, train.classes)


def to_raw(x: torch.Tensor, scaling: Scaling) -> np.ndarray:
    """Model-space values in [0, 1] back to the data's own units: uint8 pixels, or float32 values."""
    if scaling == UINT8:
        return x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    lo, hi = np.asarray(scaling.lo, np.float64), np.asarray(scaling.hi, np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (x.double().numpy() * span + lo).astype(np.float32)


def refuse_existing(path: str | os.PathLike, force: bool) -> Path:
    path = Path(path)
    check(force or not path.exists(), f"{path} exists; pass --force to replace it")
    check(path.parent.is_dir(), f"{path.parent}: no such folder for the output")
    return path


def write_array(out: str | os.PathLike, x: np.ndarray, force: bool = False, **extra: np.ndarray) -> Path:
    """Write x to out: a .npy or .npz file (x, plus extra arrays), or for images a folder of PNGs.

    The output appears whole or not at all; an existing one is replaced only with force.
    """
    out = refuse_existing(out, force)
    suffix = out.suffix.lower()
    if suffix == ".npy":
        return aio.atomic_write(out, lambda f: np.save(f, x, allow_pickle=False))
    if suffix == ".npz":
        return aio.atomic_write(out, lambda f: np.savez(f, x=x, **extra))
    check(not suffix, f"{out}: write .npy, .npz, or a folder (a name without a suffix) of PNG images")
    check(x.ndim == 4 and x.shape[1] in (1, 3, 4), f"{out}: only images can be written as PNG files; use .npz")
    return _write_png_folder(out, x, force)


def _write_png_folder(out: Path, x: np.ndarray, force: bool) -> Path:
    from PIL import Image

    pixels = x if x.dtype == np.uint8 else (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    pixels = pixels.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        width = len(str(len(pixels) - 1))
        for i, item in enumerate(pixels):
            Image.fromarray(item[..., 0] if item.shape[-1] == 1 else item).save(tmp / f"{i:0{width}d}.png")
        tmp.chmod(0o777 & ~aio.current_umask())
        if force and out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
