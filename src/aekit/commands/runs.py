"""The verbs of a run as a whole: the types and shipped models, train, evaluate, reconstruct, report, export."""

from __future__ import annotations

from ..flags import add_fields, config_file, sections_given
from .table import INPUT_HELP, add_data_dir, add_input, source_of, verb


@verb("models", "list the autoencoder types, and the trained models that ship with aekit")
def _models(p):
    from .. import pretrained
    from ..models.types import get_model_class, list_models

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
    from .._train import train
    from ..config import DataConfig, TrainConfig
    from ..models.types import get_model_class, list_models

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
    add_data_dir(p)
    owners: dict[str, type] = {}
    group = p.add_argument_group("model options (each type's own are marked)")
    for name in ["ae", *(m for m in list_models() if m != "ae")]:  # the shared options first, unmarked
        note = "" if name == "ae" else f" [{name}]"
        add_fields(group, get_model_class(name).Config, "model", {"input_shape", "classes"}, owners, note)
    add_fields(p.add_argument_group("training options"), TrainConfig, "train", set(), owners)
    add_fields(p.add_argument_group("data options"), DataConfig, "data", {"source"}, owners)

    def run_train(args):
        from .. import distributed
        from ..disk import dumps
        from ..errors import check

        if args.nproc != 1:
            check(args.nproc >= 1, f"--nproc must be at least 1, got {args.nproc}")
            check(distributed.world()[1] == 1, "--nproc starts the processes itself; do not combine it with torchrun")
            return distributed.launch(args.nproc, args.argv)
        model, source, sections = config_file(args.config) if args.config else (None, None, {})
        for section, given in sections_given(args).items():
            sections[section] = {**sections.get(section, {}), **given}
        common = {"quiet": args.quiet, "data_dir": args.data_dir, "config": sections, "tensorboard": args.tensorboard}
        data = source_of(args)
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
    from .._evaluate import evaluate

    p.add_argument("run", help="run folder")
    add_input(p, required=False)
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
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="28x28 digits: also score N generated items against the evaluation items (Frechet distance, precision "
        "and recall in the features of an MNIST classifier aekit trains once; 10000 is the usual)",
    )
    p.add_argument("--sampler", choices=("prior", "gaussian", "gmm"), help="--samples: where codes come from")
    return lambda args: evaluate(
        args.run,
        source_of(args),
        args.data_dir,
        save=not args.no_save,
        nll_k=args.nll_k,
        split=args.split,
        refine=args.refine,
        samples=args.samples,
        sampler=args.sampler,
    )


@verb("reconstruct", "figure of originals over reconstructions")
def _reconstruct(p):
    from .._evaluate import reconstruction_figure

    p.add_argument("run", help="run folder")
    add_input(p, required=False)
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("-n", type=int, default=8, help="how many items, 1 to 32 (default 8)")
    p.add_argument("--force", action="store_true", help="replace an existing figure")
    return lambda args: str(
        reconstruction_figure(args.run, args.output, args.n, source_of(args), args.data_dir, args.force, args.split)
    )


@verb("report", "the run as one self-contained HTML page: metrics, figures, config, environment")
def _report(p):
    from .._report import report

    p.add_argument("run", help="run folder")
    p.add_argument("-o", "--output", required=True, help=".html file to write")
    p.add_argument("--figures", metavar="DIR", help="also write each figure as a PNG into this folder")
    p.add_argument("--force", action="store_true", help="replace an existing report (and figures)")
    add_data_dir(p)
    return lambda args: report(args.run, args.output, args.force, args.data_dir, args.figures)


@verb("export", "a part of the model as an ONNX file (any batch size; a resnet's any image size)")
def _export(p):
    from .._export import PARTS, export

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
    add_data_dir(p)
    return lambda args: export(
        args.run, args.output, args.part, args.threshold, args.percentile, args.force, args.data_dir
    )
