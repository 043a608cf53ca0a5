"""Command-line flags from the config dataclasses: every option a model type, the trainer or the data
declares is a flag (--latent-dim, --epochs, --test-split), its help taken from the class docstring, its value
kept under its section ("model.latent_dim") so that the three sections travel apart from the command line
to the Trainer, as a run's config.json holds them."""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

SECTIONS = ("model", "train", "data")


def csv_list(text: str) -> list[str]:
    """A comma-separated flag value as a list of its items."""
    return [v.strip() for v in text.split(",") if v.strip()]


def field_help(cls: type) -> dict[str, str]:
    """Help for each field from "name: text" lines of the docstrings of the class and its bases."""
    helps: dict[str, str] = {}
    current = None
    lines = [line for klass in reversed(cls.__mro__) for line in (klass.__doc__ or "").splitlines() + [""]]
    for line in lines:
        m = re.match(r"\s{4}(\w+): (.*)", line)
        if m:
            current = m.group(1)
            helps[current] = m.group(2).strip()
        elif current and line.startswith(" " * 8) and line.strip():
            helps[current] += " " + line.strip()
        else:
            current = None
    return {k: v.replace("%", "%%") for k, v in helps.items()}


def parse_as(hint: Any):
    """An argparse type function for a config field's type hint (X | None parses as X; "none" gives None)."""
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    if optional:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is str:
        parse = csv_list
    elif typing.get_origin(hint) is tuple:

        def parse(text: str) -> list[int]:
            try:
                return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None

    elif hint is bool:

        def parse(text: str) -> bool:
            if text.lower() not in ("true", "false"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() == "true"

    else:
        parse = hint
    return (lambda text: None if text.lower() == "none" else parse(text)) if optional else parse


def add_fields(group, cls: type, section: str, skip: set[str], owners: dict[str, type], note: str = "") -> None:
    """A flag per field of cls, its value kept under SECTION.NAME. A field two model types both declare must
    mean the same (the same type): the flag serves both."""
    hints, helps = typing.get_type_hints(cls), field_help(cls)
    olds: dict[str, list[str]] = {}
    for old, new in getattr(cls, "RENAMED", {}).items():
        olds.setdefault(new, []).append(old)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name in owners:
            if typing.get_type_hints(owners[f.name])[f.name] != hints[f.name]:  # pragma: no cover - a registration bug
                raise TypeError(f"option {f.name} means different things in {owners[f.name]} and {cls}")
            continue
        owners[f.name] = cls
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "") + note
        if default is not None:
            text += f" (default {','.join(map(str, default)) if isinstance(default, tuple) else default})"
        metavar = "H,W" if f.name in ("size", "crop") else f.name.upper()
        flags = ["--" + name.replace("_", "-") for name in (f.name, *olds.get(f.name, ()))]  # new name, then old ones
        switch = {"nargs": "?", "const": True} if hints[f.name] is bool else {}  # --binarize means --binarize true
        group.add_argument(
            *flags, dest=f"{section}.{f.name}", type=parse_as(hints[f.name]), metavar=metavar, help=text, **switch
        )


def sections_given(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The option flags given, by section: {"model": {...}, "train": {...}, "data": {...}}."""
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for dest, value in vars(args).items():
        section, _, name = dest.partition(".")
        if name and value is not None:
            sections[section][name] = value
    return sections


def config_file(path: str) -> tuple[str | None, str | None, dict[str, dict[str, Any]]]:
    """(model name, data source, option sections) from a JSON file shaped like a run's config.json."""
    from .config import DataConfig, new_names
    from .disk import read_json
    from .errors import check
    from .runfiles import CONFIG_KEYS

    file = read_json(Path(path))
    check(isinstance(file, dict), f"{path}: expected a JSON object with model/train/data sections")
    unknown = sorted(set(file) - CONFIG_KEYS)
    check(not unknown, f"{path}: unknown section(s) {unknown}; expected model, train, data")
    sections = {key: file.get(key) or {} for key in SECTIONS}
    for key, section in sections.items():
        check(isinstance(section, dict), f"{path}: the {key!r} section must be an object")
    model = {k: v for k, v in sections["model"].items() if k not in ("name", "input_shape", "classes")}  # the data's
    data = {k: v for k, v in new_names(DataConfig, sections["data"], f"{path}: data").items() if k != "source"}
    return sections["model"].get("name"), sections["data"].get("source"), {**sections, "model": model, "data": data}
