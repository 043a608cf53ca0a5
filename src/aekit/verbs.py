"""The verbs of the `aekit` command, a table of them: each verb's flags beside its handler.

A verb is a function decorated with @verb(name, help): it adds its arguments to its parser and returns its
handler, which makes one call into aekit's API and returns what to print (a dict is printed as JSON, text as
it is, an int is the exit status). A new verb is one such function here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .flags import add_fields, config_file, csv_list, parse_as, sections_given

VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Callable]]] = {}
INPUT_HELP = "the data: mnist, digits, or a path (image file, folder or quoted glob pattern, .npy, .npz, .csv, IDX)"


def verb(name: str, help: str):
    """Register setup(parser) -> handler as the verb `name` ("data fetch" is the action fetch of data)."""

    def register(setup: Callable[[argparse.ArgumentParser], Callable]) -> Callable:
        VERBS[name] = (help, setup)
        return setup

    return register


# ---------------------------------------------------------------- arguments several verbs share


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where built-in datasets live (default $AEKIT_DATA or ~/.cache/aekit)")


def _add_input(p: argparse.ArgumentParser, required: bool) -> None:
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
    _add_data_dir(p)


def _source(args: argparse.Namespace) -> str | None:
    """INPUT, given as the positional argument or as --data (not both)."""
    from .errors import check

    given, alias = getattr(args, "input", None), getattr(args, "data_alias", None)
    check(given is None or alias is None, f"give the data once: {given} or --data {alias}")
    return given if given is not None else alias


def _add_use(p: argparse.ArgumentParser, output: str, required: bool = True, data: bool = True) -> None:
    """A use of a trained run: RUN, its INPUT, -o and --force."""
    p.add_argument("run", help="run folder of a trained model")
    _add_input(p, required=data)
    p.add_argument("-o", "--output", required=required, help=output)
    p.add_argument("--force", action="store_true", help="replace existing outputs (only what aekit wrote)")


# ---------------------------------------------------------------- verbs


@verb("data fetch", "download a built-in dataset that does not come with aekit (see: aekit data list)")
def _data_fetch(p):
    from .data.registry import BUILTINS
    from .errors import check

    fetched = ", ".join(name for name, known in BUILTINS.items() if known.fetch is not None)
    p.add_argument("name", help=f"a built-in dataset that is fetched: {fetched}")
    p.add_argument("--from", dest="source", metavar="DIR_OR_URL", help="take the files from a folder or a mirror URL")
    p.add_argument("--force", action="store_true", help="fetch again even if the files are there")
    _add_data_dir(p)

    def fetch(args):
        check(args.name in BUILTINS, f"unknown dataset {args.name!r}; built-in: {', '.join(BUILTINS)}")
        fetch = BUILTINS[args.name].fetch
        check(fetch is not None, f"{args.name} comes with aekit's dependencies; there is nothing to fetch")
        fetch(args.data_dir, source=args.source, force=args.force, log=lambda m: print(m, file=sys.stderr))

    return fetch


@verb("data list", "built-in datasets and whether they are present")
def _data_list(p):
    _add_data_dir(p)
    from .data.registry import BUILTINS

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
    from .config import DataConfig
    from .data import info

    add_fields(p, DataConfig, "data", {"source", "split_seed", "classes"}, {})
    _add_data_dir(p)
    return lambda args: info(args.source, data_dir=args.data_dir, **sections_given(args)["data"])


@verb("data export", "write a dataset out as files: a folder of PNGs by label, a CSV table or an .npz")
def _data_export(p):
    from .config import DataConfig
    from .data.export import export

    p.add_argument("source", metavar="INPUT", help=INPUT_HELP)
    p.add_argument("-o", "--output", required=True, help="a folder name (images), .csv (tables) or .npz")
    p.add_argument("--split", choices=("all", "train", "test"), default="all", help="which items (default all)")
    p.add_argument("--force", action="store_true", help="replace an existing output (only what aekit wrote)")
    add_fields(p, DataConfig, "data", {"source"}, {})
    _add_data_dir(p)
    return lambda args: export(
        args.source, args.output, args.split, args.data_dir, args.force, **sections_given(args)["data"]
    )


@verb("models", "list the autoencoder types, and the trained models that ship with aekit")
def _models(p):
    from . import pretrained
    from .models.types import get_model_class, list_models

    def models(args):
        lines = [(name, (get_model_class(name).__doc__ or "").strip().splitlines()) for name in list_models()]
        out = ["types (aekit train --model TYPE):"]
        out += [f"  {name:6} {doc[0] if doc else ''}" for name, doc in lines]
        out.append("shipped, trained (a name works wherever a run folder does; --init NAME starts a run from one):")
        for name in pretrained.names() or ["(none in this installation)"]:
            shipped = pretrained.SHIPPED.get(name)
            out.append(f"  {name}  {shipped.what if shipped else ''}".rstrip())
            if shipped:
                out += [f"    {pretrained.summary(name)}", f"    {shipped.example}"]
        return "\n".join(out)

    return models


@verb("train", "train an autoencoder into a run folder")
def _train(p):
    from .config import DataConfig, TrainConfig
    from .models.types import get_model_class, list_models
    from .train import train

    p.add_argument("input", nargs="?", metavar="INPUT", help=f"{INPUT_HELP} (default mnist)")
    p.add_argument("--data", dest="data_alias", metavar="INPUT", help="the same as INPUT")
    p.add_argument("--model", choices=list_models(), help="autoencoder type (default ae; see: aekit models)")
    p.add_argument("--out", help="run folder to create (default runs/MODEL-DATA)")
    p.add_argument("--config", help="JSON file with model/train/data sections (a run's config.json works); flags win")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing run folder at --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--tensorboard", metavar="DIR", help="log the run for TensorBoard in DIR")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N local processes (DDP; several machines: torchrun --nnodes ... -m aekit train)",
    )
    _add_data_dir(p)
    owners: dict[str, type] = {}
    group = p.add_argument_group("model options (each type's own are marked)")
    for name in ["ae", *(m for m in list_models() if m != "ae")]:  # the shared options first, unmarked
        note = "" if name == "ae" else f" [{name}]"
        add_fields(group, get_model_class(name).Config, "model", {"input_shape"}, owners, note)
    add_fields(p.add_argument_group("training options"), TrainConfig, "train", set(), owners)
    add_fields(p.add_argument_group("data options"), DataConfig, "data", {"source"}, owners)

    def run_train(args):
        from . import distributed
        from .disk import dumps
        from .errors import check

        if args.nproc != 1:
            check(args.nproc >= 1, f"--nproc must be at least 1, got {args.nproc}")
            check(distributed.world()[1] == 1, "--nproc starts the processes itself; do not combine it with torchrun")
            return distributed.launch(args.nproc, args.argv)
        model, source, sections = config_file(args.config) if args.config else (None, None, {})
        for section, given in sections_given(args).items():
            sections[section] = {**sections.get(section, {}), **given}
        common = {"quiet": args.quiet, "data_dir": args.data_dir, "config": sections, "tensorboard": args.tensorboard}
        data = _source(args)
        if args.resume:
            given = [f"--{flag}" for flag in ("model", "out", "config", "force") if getattr(args, flag)]
            given += ["INPUT"] if data is not None else []
            check(not given, f"--resume continues the run with its own data and model; drop {', '.join(given)}")
            run = train(out=args.resume, resume=True, **common)
        else:
            run = train(data or source or "mnist", args.model or model, out=args.out, force=args.force, **common)
        if run is None:  # a rank other than 0 of a multi-process run: rank 0 reports
            return None
        final = run.metrics.get("final", {})
        shown = {k: round(v, 6) for k, v in final.items() if k.startswith(("train_", "test_"))}
        return f"run folder: {run.path}  {dumps(shown, indent=None)}\nnext: aekit evaluate {run.path}"

    return run_train


@verb("evaluate", "test metrics of a run beside PCA and mean baselines (JSON)")
def _evaluate(p):
    from .evaluate import evaluate

    p.add_argument("run", help="run folder")
    _add_input(p, required=False)
    p.add_argument("--no-save", action="store_true", help="do not store the result in the run's metrics.json")
    p.add_argument(
        "--nll-k",
        type=int,
        default=0,
        metavar="K",
        help="vae: importance-sampled negative log-likelihood with K samples per item (slow; 0 skips)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="also measure codes fitted to each item (to each whole photo: its tiles' codes together) by STEPS "
        "steps of gradient descent (ae, dae, vae; slow)",
    )
    return lambda args: evaluate(
        args.run,
        _source(args),
        args.data_dir,
        save=not args.no_save,
        nll_k=args.nll_k,
        split=args.split,
        refine=args.refine,
    )


@verb("reconstruct", "figure of originals over reconstructions")
def _reconstruct(p):
    from .evaluate import reconstruction_figure

    p.add_argument("run", help="run folder")
    _add_input(p, required=False)
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("-n", type=int, default=8, help="how many items, 1 to 32 (default 8)")
    p.add_argument("--force", action="store_true", help="replace an existing figure")
    return lambda args: str(
        reconstruction_figure(args.run, args.output, args.n, _source(args), args.data_dir, args.force, args.split)
    )


@verb("report", "the run as one self-contained HTML page: metrics, figures, config, environment")
def _report(p):
    from .report import report

    p.add_argument("run", help="run folder")
    p.add_argument("-o", "--output", required=True, help=".html file to write")
    p.add_argument("--figures", metavar="DIR", help="also write each figure as a PNG into this folder")
    p.add_argument("--force", action="store_true", help="replace an existing report (and figures)")
    _add_data_dir(p)
    return lambda args: report(args.run, args.output, args.force, args.data_dir, args.figures)


@verb("export", "a part of the model as an ONNX file (any batch size; a resnet's any image size)")
def _export(p):
    from .export import PARTS, export

    p.add_argument("run", help="run folder")
    p.add_argument("-o", "--output", required=True, help=".onnx file to write")
    parts = "; ".join(f"{k}: {v}" for k, v in PARTS.items())
    p.add_argument("--part", choices=list(PARTS), default="reconstruct", help=f"{parts} (default reconstruct)")
    p.add_argument("--threshold", type=float, help="scorer: flag scores above this (default: see --percentile)")
    p.add_argument(
        "--percentile", type=float, default=99.0, help="scorer: the threshold at this percentile of the training "
        "data's scores (default 99)"
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing .onnx file")
    _add_data_dir(p)
    return lambda args: export(
        args.run, args.output, args.part, args.threshold, args.percentile, args.force, args.data_dir
    )


@verb("compress", "items -> an .aez file of entropy-coded latent codes")
def _compress(p):
    from .apps.compress import compress_file

    _add_use(p, ".aez file to write")
    p.add_argument(
        "--bits", type=int, default=8, help="bits per code dimension (1-12, default 8); a compressor (--rate-lambda) "
        "codes its integer codes with its own tables instead"
    )  # fmt: skip
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="a compressor (--rate-lambda): fit each image's codes to it by STEPS steps first (a closer image in "
        "fewer bytes; slow: each step is a backward pass over the image)",
    )
    p.add_argument(
        "--quality", type=int, metavar="Q", help="the level of a shipped codec (photo-codec: 1 the smallest files to "
        "4 the best photos; 3 when left out)"
    )  # fmt: skip
    return lambda args: compress_file(
        args.run, _source(args), args.output, bits=args.bits, split=args.split, force=args.force,
        data_dir=args.data_dir, refine=args.refine, quality=args.quality,
    )  # fmt: skip


@verb("decompress", ".aez file -> the decoded items (.npz, .npy, a folder of PNGs, or a PNG for one image)")
def _decompress(p):
    from .apps.compress import decompress_file

    p.add_argument("file", help=".aez file made by aekit compress")
    p.add_argument("-o", "--output", required=True, help=".npz, .npy, .png (one image), or a folder for PNG images")
    p.add_argument("--run", help="run folder of the model (default: the one named in the file)")
    p.add_argument("--force", action="store_true", help="replace an existing output (only what aekit wrote)")
    return lambda args: decompress_file(args.file, args.output, run=args.run, force=args.force)


@verb("features", "the codes of items as a feature matrix")
def _features(p):
    from .apps.features import features_file

    _add_use(p, ".npy (codes) or .npz (x: codes, y: labels)")
    return lambda args: features_file(
        args.run, _source(args), args.output, split=args.split, force=args.force, data_dir=args.data_dir
    )


@verb("denoise", "clean items with a trained model (a dae)")
def _denoise(p):
    from .apps.denoise import denoise_file

    _add_use(p, ".npz, .npy, or a folder name for PNG images")
    p.add_argument(
        "--add-noise",
        type=csv_list,
        metavar="KINDS",
        help="corrupt the input first (gaussian, salt_pepper, masking, shift, paste; comma-separated); report PSNR",
    )
    p.add_argument("--noise-sigma", "--sigma", type=float, default=0.5, help="Gaussian noise std (default 0.5)")
    p.add_argument("--noise-p", "--p", type=float, default=0.25, help="share hit by salt_pepper or masking (0.25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise (default 0)")
    p.add_argument("--noisy-out", help="also write the noisy copy here")
    p.add_argument("--figure", help="PNG of noisy over denoised (over clean) items")
    return lambda args: denoise_file(
        args.run,
        _source(args),
        args.output,
        split=args.split,
        add_noise=args.add_noise,
        sigma=args.noise_sigma,
        p=args.noise_p,
        seed=args.seed,
        noisy_out=args.noisy_out,
        figure=args.figure,
        force=args.force,
        data_dir=args.data_dir,
    )


@verb("generate", "new items, interpolations (of INPUT's items), or the 2-d latent manifold")
def _generate(p):
    from .apps.generate import generate_file

    _add_use(p, ".png grid, or .npz/.npy", data=False)
    p.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="spread of the codes drawn (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes drawn (default 0)")
    p.add_argument("--interpolate", type=int, nargs=2, metavar=("I", "J"), help="decode the line between items I, J")
    p.add_argument("--steps", type=int, default=10, help="images along an interpolation (default 10)")
    p.add_argument("--manifold", action="store_true", help="decode a grid over a 2-d code (latent_dim 2)")
    p.add_argument("--grid", type=int, default=15, help="manifold grid size (default 15)")
    p.add_argument("--size", type=parse_as(tuple[int, ...]), metavar="H,W", help="resnet vae: samples of this size")
    return lambda args: generate_file(
        args.run,
        args.output,
        n=args.n,
        temperature=args.temperature,
        seed=args.seed,
        between=args.interpolate,
        data=_source(args),
        split=args.split,
        steps=args.steps,
        grid=args.grid if args.manifold else None,
        force=args.force,
        data_dir=args.data_dir,
        size=args.size,
    )


@verb("anomaly", "score items by reconstruction error (VAE: negative ELBO) and flag the unusual")
def _anomaly(p):
    from .apps.anomaly import anomaly_file

    _add_use(p, "CSV: index, score, flagged, and where known the file and the label", required=False)
    p.add_argument("--contamination", type=float, help="flag this share of the input (its highest scores)")
    p.add_argument(
        "--percentile",
        type=float,
        default=99.0,
        help="else flag scores above this percentile of the run's training data (default 99)",
    )
    p.add_argument(
        "--normal",
        type=csv_list,
        metavar="LABELS",
        help="labels of normal items (numbers or class names): adds AUROC and AUPRC",
    )
    p.add_argument("--figure", help="PNG: score histogram with the threshold and the most anomalous items")
    p.add_argument("--maps", help="resnet: .npz of the anomaly maps, an array (H, W) per image named by its file")
    p.add_argument(
        "--masks",
        metavar="FOLDER",
        help="resnet: ground-truth masks named as their images (default: INPUT/masks if there): adds pixel AUROC",
    )
    return lambda args: anomaly_file(
        args.run,
        _source(args),
        split=args.split,
        contamination=args.contamination,
        percentile=args.percentile,
        normal=args.normal,
        out=args.output,
        figure=args.figure,
        force=args.force,
        data_dir=args.data_dir,
        maps_out=args.maps,
        masks=args.masks,
    )


@verb("latent", "a 2-d map of the codes (PCA above 2 dimensions), coloured by label")
def _latent(p):
    from .apps.features import latent_file

    _add_use(p, ".png")
    p.add_argument("--max-items", type=int, default=5000, help="plot at most this many items (default 5000)")
    return lambda args: latent_file(
        args.run, _source(args), args.output, split=args.split, max_items=args.max_items, force=args.force,
        data_dir=args.data_dir,
    )  # fmt: skip
