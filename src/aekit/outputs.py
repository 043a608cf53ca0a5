"""The outputs of a command (-o): checked before any work, written whole, replaced only where aekit wrote them.

OutputPath: a user's output path, never one of the command's inputs; without --force nothing existing is ever
replaced; with it, only a file the manifest (disk.MANIFEST) lists with its current content, or a folder whose every
file its manifest lists so, never the current folder or one above it. write_images and png_image: the PNG
writers every output of images goes through."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import disk, pretrained
from .errors import AekitError, check

PNG_FOLDER = ""  # the kind of an output named without a suffix: a folder of PNG images
_KIND_NAMES = {
    ".png": ".png (a PNG image)",
    ".npy": ".npy",
    ".npz": ".npz",
    ".aez": ".aez",
    ".csv": ".csv",
    ".onnx": ".onnx",
    ".html": ".html",
    PNG_FOLDER: "a name without a suffix (a folder of PNG images)",
}


def _describe(kinds: tuple[str, ...]) -> str:
    names = [_KIND_NAMES[k] for k in kinds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _within(path: Path, folder: Path) -> bool:
    """Whether path is folder or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def _resolved(path: Path) -> Path:
    """path with its links followed; where one cannot be read (a process's cwd link in /proc, say), made absolute
    as it is: such a path is nothing aekit could write into anyway."""
    try:
        return path.resolve()
    except OSError:
        return Path(os.path.abspath(path))


def check_not_here(path: Path, what: str = "") -> None:
    """AekitError if path is the current folder or one above it (never replaced, whatever is in it)."""
    check(not _within(Path.cwd().resolve(), path.resolve()), f"{path}: aekit never replaces the current folder or one "
          f"above it{what}")  # fmt: skip


def check_not_shipped(path: Path, what: str = "") -> None:
    """AekitError if path is the folder of the models that ship with aekit or inside it (never written)."""
    check(not pretrained.is_shipped(path), f"{path}: the models that ship with aekit are never written over{what}")


class OutputPath:
    """An output path, checked before any work, then written whole.

    kinds: the suffixes it may have (".png", ".npz", ...; PNG_FOLDER for a folder of PNGs). inputs: the files and
    folders the command reads: the output may be none of them, nor a folder holding one, --force or not. Without
    force an existing path is refused, now and at the moment of writing. With force, only what aekit wrote is
    replaced (see disk.is_ours and disk.is_our_folder); every file written is listed in the manifest.
    """

    def __init__(
        self, path: str | os.PathLike, kinds: Iterable[str], force: bool = False, inputs: Iterable[Path] = ()
    ) -> None:
        self.path, self.force = Path(path), force
        kinds = tuple(kinds)
        self.kind = self.path.suffix.lower()
        check(self.kind in kinds, f"{self.path}: name this output {_describe(kinds)}")
        check(self.path.name != disk.MANIFEST, f"{self.path}: that name is aekit's manifest; give another output name")
        check(self.path.parent.is_dir(), f"{self.path.parent}: no such folder for the output")
        check_not_shipped(self.path, "; give another output name")
        target = self.path.resolve()
        for given in inputs:
            given = _resolved(Path(given))
            check(
                not _within(given, target),
                f"{self.path} is {'' if given == target else 'a folder holding '}an input of this "
                "command; aekit never writes over its input: give another output name",
            )
        self.check_replaceable()
        disk.remove_abandoned(disk.leftovers(self.path))  # what a killed command left while writing this output

    def check_replaceable(self) -> None:
        """AekitError unless path is free, or force is given and what is there is aekit's to replace."""
        path = self.path
        if not os.path.lexists(path):
            return
        check(self.force, f"{path} exists; pass --force to replace it")
        info = os.lstat(path)
        check(not stat.S_ISLNK(info.st_mode), f"{path} is a symbolic link; aekit replaces only what it wrote")
        if self.kind == PNG_FOLDER:
            check_not_here(path)
            check(stat.S_ISDIR(info.st_mode), f"{path} is a file; the output is a folder of PNGs")
            check(disk.is_our_folder(path), f"{path} is a folder aekit did not write (or it holds files aekit did not "
                  "write there); aekit replaces only its own outputs: give another name")  # fmt: skip
        else:
            check(stat.S_ISREG(info.st_mode), f"{path} is not a file; give another output name")
            check(info.st_size == 0 or disk.is_ours(path), f"{path} is not a file aekit wrote (or it changed since); "
                  "aekit replaces only its own outputs: give another name")  # fmt: skip

    def write(self, fill: Callable[[IO[bytes]], Any]) -> Path:
        """Write a file through fill(f), whole or not at all, and list it in its folder's manifest."""
        return disk.atomic_write(self.path, fill, replace=self.force, record=True)

    def write_bytes(self, data: bytes) -> Path:
        return self.write(lambda f: f.write(data))

    def write_folder(self, fill: Callable[[Path], Any]) -> Path:
        """Make a folder through fill(folder), list its files in its manifest, and put it at path in one rename
        (replacing the old one whole)."""
        tmp, fd = disk.temporary(self.path, folder=True)
        try:
            try:
                fill(tmp)
                files = {p.relative_to(tmp).as_posix(): disk.digest(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
                disk.write_manifest(tmp, files)
            except OSError as e:
                raise AekitError(f"{self.path}: cannot write ({e.strerror or e})") from None
            tmp.chmod(0o777 & ~disk.current_umask())
            if self.force and os.path.lexists(self.path):
                self.check_replaceable()  # again: it may have changed since the command started
                try:
                    disk.exchange(tmp, self.path)
                except OSError as e:
                    raise AekitError(f"{self.path}: cannot replace it ({e.strerror or e})") from None
            else:
                disk.publish(tmp, self.path, replace=False)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange: the old folder
        return self.path


def distinct(*outputs: OutputPath | None) -> list[OutputPath]:
    """The given outputs (None dropped); AekitError if two name the same file."""
    given = [o for o in outputs if o is not None]
    check(len({o.path.resolve() for o in given}) == len(given), "the outputs must be different files")
    return given


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
