"""Trained models that ship inside the package, used by name wherever a run folder is taken
(`aekit denoise photo-denoiser photo.jpg -o clean.png`, `aekit.load("photo-denoiser")`, `--init photo-denoiser`).

Each is a folder here named after it, holding what a run folder holds for its uses: config.json, model.safetensors
and metrics.json, whose "shipped" section holds the figures measured on photos it never saw (and how it was
trained). `make pretrained` (bench/pretrained.py) trains them again from photos inside scikit-image's wheel and
measures them; nothing is downloaded. aekit never writes into this folder: no --force replaces a shipped model,
and an evaluation of one is not stored. A folder of the same name in the current folder is a run like any other
and is taken first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Shipped:
    """What a shipped model is for, and a command that uses it."""

    what: str
    example: str


SHIPPED = {
    "photo-denoiser": Shipped(
        "removes Gaussian noise of unknown strength (sigma 5 to 50 of 255) from RGB photos of any size",
        "aekit denoise photo-denoiser photo.jpg -o clean.png",
    ),
}


def path_of(name: str | os.PathLike) -> Path | None:
    """The folder of the shipped model of that name, or None (not a shipped name, or its weights are missing)."""
    folder = FOLDER / str(name)
    return folder if str(name) in SHIPPED and (folder / "model.safetensors").is_file() else None


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
