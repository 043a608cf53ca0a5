"""The verbs of the `aekit` command, a table of them: each verb's flags beside its handler.

A verb is a function decorated with @verb(name, help): it adds its arguments to its parser and returns its
handler, which makes one call into aekit's API and returns what to print (a dict is printed as JSON, text as
it is, an int is the exit status). A new verb is one such function (commands/data.py, runs.py and uses.py hold
aekit's own); each imports the module its handler calls inside its setup, so that building the parser of every verb
does not load every use.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Callable]]] = {}
INPUT_HELP = "the data: mnist, digits, or a path (image file, folder or quoted glob pattern, .npy, .npz, .csv, IDX)"


def verb(name: str, help: str):
    """Register setup(parser) -> handler as the verb `name` ("data fetch" is the action fetch of data)."""

    def register(setup: Callable[[argparse.ArgumentParser], Callable]) -> Callable:
        VERBS[name] = (help, setup)
        return setup

    return register


# ---------------------------------------------------------------- arguments several verbs share


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where built-in datasets live (default $AEKIT_DATA or ~/.cache/aekit)")


def add_input(p: argparse.ArgumentParser, required: bool) -> None:
    """The data a verb reads, the same way for every verb: a positional INPUT (or --data) and --split."""
    default = "" if required else "; default: the run's own data"
    p.add_argument("input", nargs=None if required else "?", metavar="INPUT", help=f"{INPUT_HELP}{default}")
    p.add_argument("--data", dest="data_alias", metavar="INPUT", help="the same as INPUT")
    p.add_argument(
        "--split",
        choices=("all", "train", "test"),
        help="which items: all, or the train or test part (what the run held out of its own data; a built-in's "
        "test set). Default: test when INPUT is not given (the run's held-out items), else all",
    )
    add_data_dir(p)


def source_of(args: argparse.Namespace) -> str | None:
    """INPUT, given as the positional argument or as --data (not both)."""
    from ..errors import check

    given, alias = getattr(args, "input", None), getattr(args, "data_alias", None)
    check(given is None or alias is None, f"give the data once: {given} or --data {alias}")
    return given if given is not None else alias


def add_use(p: argparse.ArgumentParser, output: str, required: bool = True, data: bool = True) -> None:
    """A use of a trained run: RUN, its INPUT, -o and --force."""
    p.add_argument("run", help="run folder of a trained model")
    add_input(p, required=data)
    p.add_argument("-o", "--output", required=required, help=output)
    p.add_argument("--force", action="store_true", help="replace existing outputs (only what aekit wrote)")
