"""Using a trained model: compress, denoise, extract features, generate, score anomalies (one use a file).

Shared here: running the model over a verb's items in batches
(checking that what comes out is finite), and writing array outputs whole or not at all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data.datasets import Dataset, Photos
from ..data.scaling import UINT8, Scaling
from ..errors import check
from ..limits import INFERENCE_BATCH, allowed_bytes, check_load_size
from ..outputs import PNG_FOLDER, OutputPath, png_image, write_images
from ..progress import chunks

ARRAY_KINDS = (".npy", ".npz", PNG_FOLDER)
IMAGE_KINDS = (*ARRAY_KINDS, ".png")  # one image may be one PNG file


def check_finite(x: torch.Tensor | np.ndarray, what: str) -> None:
    """AekitError unless every value of x is finite (what names the values)."""
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    check(bool(finite), f"{what} hold NaN or infinite values; nothing was written")


def model_items(run, source) -> torch.Tensor:
    """model_inputs for a use that takes items of the model's input shape only: (N, *input_shape) floats in [0, 1].
    AekitError for images of other sizes."""
    x = model_inputs(run, source)
    shape = list(run.model.config.input_shape)
    check(not isinstance(x, list), f"this use takes images of the model's size {shape}; crop or resize them")
    return x


def model_inputs(run, source) -> torch.Tensor | list[torch.Tensor]:
    """The one place where what a use was given becomes the model's inputs. source: a tensor of items (N, ...) in
    [0, 1], used as it is; a list of whole images (C, H, W); a Dataset (run.read's); or a numpy array of items in
    their own units, a dataset name, a path or a glob pattern, read as the run's training data was (all of it).
    Returns a tensor (N, *input_shape) of floats, or, for a fully convolutional model
    (model.config.any_size) given images of other sizes than its input's, the list of those images (C, H, W),
    uint8 or floats in [0, 1], to be used whole (in tiles)."""
    config = run.model.config
    if isinstance(source, list):  # whole images already
        return source
    if not isinstance(source, torch.Tensor):
        items = source if isinstance(source, Dataset) else run.read(source, "all")[0]
        if isinstance(items, Photos) and items.item_shape != tuple(config.input_shape):
            return [items.image(i) for i in range(len(items))]  # uint8, each used whole
        source = items.floats()
    other = config.any_size and source.dim() == 4 and source.shape[1] == config.input_shape[0]
    if other and tuple(source.shape[2:]) != tuple(config.input_shape[1:]):
        return list(source)
    check_items(run.model, source)
    return source


def check_items(model: torch.nn.Module, x: torch.Tensor) -> None:
    """AekitError unless x holds at least one item of the model's input shape."""
    check(len(x) > 0, "no items")
    shape = tuple(model.config.input_shape)
    check(tuple(x.shape[1:]) == shape, f"items have shape {list(x.shape[1:])}, the model expects {list(shape)}")


@torch.no_grad()
def encode_all(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """model.encode over x (N, ...) (with a conditional model's labels (N,)) in batches: (N, latent_dim) on the CPU,
    checked finite."""
    check_items(model, x)
    return _in_batches(model, model.encode, x, "encoding", "the model's codes for this input", labels)


@torch.no_grad()
def decode_all(model: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """model.decode over codes z (N, latent_dim) (with a conditional model's labels (N,)) in batches: (N, ...) in
    [0, 1] on the CPU, checked finite."""
    check(
        model.capabilities.decodes_codes,
        "this dae's U-Net skips (model.skips) bypass its code: it rebuilds only from inputs",
    )
    check_finite(z, "the codes to decode")
    return _in_batches(model, model.decode, z, "decoding", "the model's outputs", labels)


@torch.no_grad()
def reconstruct_all(model: torch.nn.Module, x: torch.Tensor, fn=None) -> torch.Tensor:
    """fn (default model.reconstruct) over x (N, ...) in batches: (N, ...) in [0, 1] on the CPU, checked finite."""
    check_items(model, x)
    return _in_batches(model, fn or model.reconstruct, x, "rebuilding", "the model's outputs")


def _in_batches(model: torch.nn.Module, fn, x: torch.Tensor, label: str, what: str, labels=None) -> torch.Tensor:
    """fn over x (and labels, its second argument, where given) in batches of INFERENCE_BATCH on the model's device:
    the results on the CPU (filled in one tensor, never held twice), checked finite batch by batch."""
    check(len(x) > 0, "no items")
    device, out = model.device, None
    for s in chunks(len(x), INFERENCE_BATCH, label):
        y = (fn(x[s].to(device)) if labels is None else fn(x[s].to(device), labels[s])).cpu()
        check_finite(y, what)
        out = torch.empty(len(x), *y.shape[1:], dtype=y.dtype) if out is None else out
        out[s] = y
    return out


def check_images_fit(
    sizes: list[tuple[int, int]], what: str, kept: int, transient: Callable[[tuple[int, int]], int]
) -> None:
    """AekitError, before any work, unless a use over whole images of sizes (H, W) fits in memory: kept bytes a
    pixel that it holds for every image to the end (its outputs, float copies), and transient(size) for the one
    image it is working on (apps.tiles.tiling_bytes, models.layers.activation_bytes)."""
    pixels = sum(h * w for h, w in sizes)
    need = kept * pixels + max(transient(size) for size in sizes)
    fits = f"; at most about {allowed_bytes() * pixels // max(need, 1):,} pixels fit"
    check_load_size(need, what, f"{len(sizes)} image{'s' * (len(sizes) > 1)} of {pixels:,} pixels", fits)


def sizes_of(images: list[torch.Tensor]) -> list[tuple[int, int]]:
    """The (H, W) of each image (C, H, W)."""
    return [tuple(image.shape[1:]) for image in images]


def check_output_items(n: int, model: torch.nn.Module, what: str) -> None:
    """AekitError unless n new items of the model's shape fit in memory (float32, and their raw copy)."""
    per_item = 12 * math.prod(model.config.input_shape)
    check(n >= 1, f"{what}: ask for at least 1 item, got {n}")
    check_load_size(n * per_item, what, f"making {n:,} items", f"; at most {allowed_bytes() // per_item:,} fit")


def to_raw(x: torch.Tensor, scaling: Scaling) -> np.ndarray:
    """Model-space values in [0, 1] back to the data's own units: uint8 pixels, or float32 values."""
    if scaling == UINT8:  # one float copy at a time, changed in place
        return x.clamp(0, 1).mul_(255).round_().to(torch.uint8).numpy()
    with np.errstate(over="ignore"):
        raw = scaling.invert(x.numpy()).astype(np.float32)
    check_finite(raw, "the items in the data's own units (the scaling's range overflows float32)")
    return raw


def write_array(out: OutputPath, x: np.ndarray, **extra: np.ndarray) -> Path:
    """Write x to out: a .npy or .npz file (x, plus extra arrays), or for images a folder of PNGs, whole."""
    if out.kind == ".npy":
        return out.write(lambda f: np.save(f, x, allow_pickle=False))
    if out.kind == ".npz":
        return out.write(lambda f: np.savez(f, x=x, **extra))
    check(x.ndim == 4 and x.shape[1] in (1, 3, 4), f"{out.path}: only images can be written as PNG files; use .npz")
    return out.write_folder(lambda folder: write_images(folder, x.transpose(0, 2, 3, 1)))


def check_items_output(out: OutputPath, items: Dataset) -> None:
    """AekitError, before any work, unless out can hold items: a .png file holds one image, an array file images
    of one size."""
    if out.kind == ".png":
        check(items.is_image and len(items) == 1, f"{out.path}: one PNG file holds one image; name a folder")
    mixed = out.kind in (".npy", ".npz") and 0 in items.item_shape
    check(not mixed, f"{out.path}: images of several sizes are written as PNGs; name a folder")


def write_items(out: OutputPath, x: torch.Tensor | list[torch.Tensor], items: Dataset) -> Path:
    """Outputs x for items (a tensor (N, ...) or whole images (C, H, W) of any sizes, in [0, 1]) written to out
    in the data's own units: a PNG file (one image), a folder of PNGs named after the input files (numbered
    where they have no names), or .npy/.npz (images of one size)."""
    check_items_output(out, items)
    if out.kind in (PNG_FOLDER, ".png") and isinstance(x, list):
        pixels = [to_raw(image, UINT8).transpose(1, 2, 0) for image in x]
    elif out.kind in (PNG_FOLDER, ".png") and items.is_image:
        pixels = list(to_raw(x, items.scaling).transpose(0, 2, 3, 1))
    else:
        return write_array(out, to_raw(torch.stack(x) if isinstance(x, list) else x, items.scaling))
    if out.kind == ".png":
        return out.write(lambda f: png_image(pixels[0], f))
    names = png_names(items.item_names) if items.item_names else None
    return out.write_folder(lambda folder: write_images(folder, pixels, names))


def png_names(names: list[str]) -> list[str]:
    """The names of PNG outputs for inputs named names: each with the suffix .png, or with .png added where two
    inputs would otherwise share one (photo.jpg and photo.webp: photo.jpg.png and photo.webp.png)."""
    pngs = [str(Path(n).with_suffix(".png")) for n in names]
    counts = Counter(pngs)
    return [p if counts[p] == 1 or p == n else n + ".png" for p, n in zip(pngs, names, strict=True)]
