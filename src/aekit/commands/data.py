"""The data verbs: aekit data fetch, list, info and export."""

from __future__ import annotations

import sys

from ..flags import add_fields, sections_given
from .table import INPUT_HELP, add_data_dir, verb


@verb("data fetch", "download a built-in dataset that does not come with aekit (see: aekit data list)")
def _data_fetch(p):
    from ..data.registry import BUILTINS
    from ..errors import check

    fetched = ", ".join(name for name, known in BUILTINS.items() if known.fetch is not None)
    p.add_argument("name", help=f"a built-in dataset that is fetched: {fetched}")
    p.add_argument("--from", dest="source", metavar="DIR_OR_URL", help="take the files from a folder or a mirror URL")
    p.add_argument("--force", action="store_true", help="fetch again even if the files are there")
    add_data_dir(p)

    def fetch(args):
        check(args.name in BUILTINS, f"unknown dataset {args.name!r}; built-in: {', '.join(BUILTINS)}")
        fetch = BUILTINS[args.name].fetch
        check(fetch is not None, f"{args.name} comes with aekit's dependencies; there is nothing to fetch")
        fetch(args.data_dir, source=args.source, force=args.force, log=lambda m: print(m, file=sys.stderr))

    return fetch


@verb("data list", "built-in datasets and whether they are present")
def _data_list(p):
    add_data_dir(p)
    from ..data.registry import BUILTINS

    def listed(args):
        return "\n".join(
            f"{name:8} {state:8} {where}\n         {known.description}"
            for name, known in BUILTINS.items()
            for state, where in [known.status(args.data_dir)]
        )

    return listed


@verb("data info", "shape, sizes, value range and labels of a dataset")
def _data_info(p):
    p.add_argument("source", help=INPUT_HELP)
    from ..config import DataConfig
    from ..data import info

    add_fields(p, DataConfig, "data", {"source", "split_seed", "classes"}, {})
    add_data_dir(p)
    return lambda args: info(args.source, data_dir=args.data_dir, **sections_given(args)["data"])


@verb("data export", "write a dataset out as files: a folder of PNGs by label, a CSV table or an .npz")
def _data_export(p):
    from ..config import DataConfig
    from ..data.export import export

    p.add_argument("source", metavar="INPUT", help=INPUT_HELP)
    p.add_argument("-o", "--output", required=True, help="a folder name (images), .csv (tables) or .npz")
    p.add_argument("--split", choices=("all", "train", "test"), default="all", help="which items (default all)")
    p.add_argument("--force", action="store_true", help="replace an existing output (only what aekit wrote)")
    add_fields(p, DataConfig, "data", {"source"}, {})
    add_data_dir(p)
    return lambda args: export(
        args.source, args.output, args.split, args.data_dir, args.force, **sections_given(args)["data"]
    )
