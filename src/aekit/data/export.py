"""A dataset written out as files a person can open and aekit reads back: a folder of PNG images (one subfolder
per label), a CSV table with a header row (its label last, in a column named label) or an .npz array (x, and y
for labels), all in the data's own units."""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from ..errors import check
from ..outputs import PNG_FOLDER, OutputPath, write_images
from .datasets import Dataset
from .registry import builtin, input_paths
from .splits import load


def export(
    source: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "all",
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    **options,
) -> dict:
    """Write the items of source (a built-in name or a path, read with data options such as test_split or
    classes) to out: a folder of PNGs (images), a .csv (tables) or an .npz (either). split: all (a file's items
    in its own order), train or test (a built-in's test set; the part held out of a file, as training holds it
    out). Returns what was written."""
    output = OutputPath(out, (PNG_FOLDER, ".csv", ".npz"), force, input_paths(source, data_dir))
    if split == "all" and builtin(str(source)) is None:  # a file's items in the file's own order
        options = {"test_split": 0.0, **options}
    items, part = load(source, data_dir=data_dir, **options).part(split, str(source))
    check(output.kind != ".csv" or not items.is_image, f"{output.path}: images are written to a folder or an .npz")
    check(output.kind != PNG_FOLDER or items.is_image, f"{output.path}: a table is written to a .csv or an .npz")
    labels = None if items.y is None else items.y.numpy()
    if output.kind == PNG_FOLDER:  # pixels: uint8 as stored, or the [0, 1] values as 0..255
        pixels, names = items.stored().transpose(0, 2, 3, 1), _image_names(labels, items.classes)
        output.write_folder(lambda folder: write_images(folder, pixels, names))
    elif output.kind == ".csv":
        output.write_bytes(_csv_bytes(_raw(items), labels, items.classes))
    else:
        raw = _raw(items)
        layout = raw.transpose(0, 2, 3, 1) if items.is_image else raw  # images as (N, H, W, C), as aekit reads them
        output.write(lambda f: np.savez(f, x=layout, **({} if labels is None else {"y": labels})))
    return {"items": len(items), "split": part, "output": str(output.path), "labels": labels is not None}


def _raw(items: Dataset) -> np.ndarray:
    """The items in their own units: uint8 pixels as they are, other values through the data's scaling."""
    x = items.stored()
    return x if x.dtype == np.uint8 else items.scaling.invert(x).astype(np.float32)


def _image_names(labels: np.ndarray | None, classes: tuple[str, ...] | None) -> list[str] | None:
    """Each image's file in the folder: LABEL/NUMBER.png (a class's name when the data has names); None numbers
    unlabeled images in the folder itself."""
    if labels is None:
        return None
    width = len(str(len(labels) - 1))
    return [f"{classes[y] if classes else y}/{i:0{width}d}.png" for i, y in enumerate(labels.tolist())]


def _csv_bytes(raw: np.ndarray, labels: np.ndarray | None, classes: tuple[str, ...] | None) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([f"x{j}" for j in range(raw.shape[1])] + (["label"] if labels is not None else []))
    for i, row in enumerate(raw.tolist()):
        label = [] if labels is None else [classes[labels[i]] if classes else int(labels[i])]
        writer.writerow([f"{v:.9g}" for v in row] + label)
    return text.getvalue().encode()
