"""Trained models that ship inside the package, used by name wherever a run folder is taken
(`aekit denoise photo-denoiser photo.jpg -o clean.png`, `aekit.load("photo-denoiser")`, `--init photo-denoiser`).

Each is a folder here named after it, holding what a run folder holds for its uses: config.json, model.safetensors
(the codec's stored as float16, half the size, widened to float32 when loaded) and metrics.json, whose "shipped"
section holds the figures measured on photos it never saw (and how it was trained). A codec at several rates holds
one such folder per quality level instead (photo-codec/1 the smallest files, ...): NAME/Q names one, NAME alone
the default level, and `--quality Q` picks one; .aez files name a shipped model by that name, not by where it is
installed. `make pretrained` (bench/pretrained.py) trains them again from photos inside scikit-image's wheel and
measures them; nothing is downloaded. aekit never writes into this folder: no --force replaces a shipped model,
and an evaluation of one is not stored. A folder of the same name in the current folder is a run like any other
and is taken first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import check

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Shipped:
    """What a shipped model is for, and a command that uses it."""

    what: str
    example: str
    qualities: int = 0  # a codec at several rates: folders 1 to qualities inside, 1 the smallest files
    default_quality: int = 0  # the level NAME alone stands for


SHIPPED = {
    "photo-denoiser": Shipped(
        "removes Gaussian noise of unknown strength (sigma 5 to 50 of 255) from RGB photos of any size",
        "aekit denoise photo-denoiser photo.jpg -o clean.png",
    ),
    "photo-codec": Shipped(
        "codes RGB photos of any size into .aez files at 4 quality levels (--quality 1 the smallest files, 4 the "
        "best photos; 3 by default)",
        "aekit compress photo-codec photo.jpg -o photo.aez --quality 3",
        qualities=4,
        default_quality=3,
    ),
}


def _folder(name: str) -> Path | None:
    """The folder a shipped name stands for (NAME, or NAME/Q for a codec's level Q), present or not; None if the
    name is not a shipped one."""
    base, _, level = name.partition("/")
    shipped = SHIPPED.get(base)
    if shipped is None:
        return None
    if not shipped.qualities:
        return FOLDER / base if not level else None
    if not level:
        return FOLDER / base / str(shipped.default_quality)
    return FOLDER / base / level if level in {str(q) for q in range(1, shipped.qualities + 1)} else None


def path_of(name: str | os.PathLike) -> Path | None:
    """The folder of the shipped model of that name, or None (not a shipped name, or its weights are missing)."""
    folder = _folder(Path(name).as_posix())
    return folder if folder is not None and (folder / "model.safetensors").is_file() else None


def with_quality(name: str | os.PathLike, quality: int | None) -> str | os.PathLike:
    """The shipped codec's level quality (NAME/Q), or name itself where quality is None; AekitError if name is not
    a shipped codec or has no such level."""
    if quality is None:
        return name
    codecs = ", ".join(f"{n} 1 to {s.qualities}" for n, s in SHIPPED.items() if s.qualities)
    levels = SHIPPED[str(name)].qualities if str(name) in SHIPPED else 0
    check(levels > 0, f"--quality picks a level of a shipped codec ({codecs}); {name} is not one")
    check(1 <= quality <= levels, f"--quality of {name} is 1 to {levels}, got {quality}")
    return f"{name}/{quality}"


def name_of(path: str | os.PathLike) -> str | None:
    """The shipped name (NAME or NAME/Q) of a shipped model's folder, or None for any other folder."""
    resolved = Path(path).resolve()
    return resolved.relative_to(FOLDER).as_posix() if FOLDER in resolved.parents else None


def is_shipped(path: str | os.PathLike) -> bool:
    """Whether path is a shipped model's folder or inside one (however it is spelled)."""
    resolved = Path(path).resolve()
    return resolved == FOLDER or FOLDER in resolved.parents


def names() -> list[str]:
    """The shipped models that are present, by name."""
    return [name for name in SHIPPED if path_of(name) is not None]


def summary(name: str) -> str:
    """One line of a shipped model's figures on photos it never saw (metrics.json's "shipped" section)."""
    path = FOLDER / name / "metrics.json"
    figures = json.loads(path.read_text()).get("shipped", {}) if path.is_file() else {}
    return figures.get("summary", "no figures recorded")
