"""Images: one image file, a folder of them (labels from subfolders) or a glob pattern, decoded with Pillow under
pixel limits, turned upright by their EXIF orientation, of one size (resized) or whole (any sizes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AekitError, check
from ..limits import check_load_size, human
from .registry import FOLDER, Raw, is_glob, many_files, register_format

MASKS = "masks"  # a subfolder of ground-truth masks for anomaly maps, not images to learn from
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
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
