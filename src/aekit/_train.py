"""aekit.train: options by section, the data read, the model built (or started from a trained one), a run folder
staged, and the Trainer (aekit.trainer) run with its callbacks; --resume continues a run from its checkpoint."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from . import disk, distributed
from .board import TensorBoard
from .callbacks import Notes, Progress, RunFigures
from .config import DataConfig, TrainConfig, field_names, from_dict
from .data.splits import Splits, load_config, with_photo_crop
from .errors import AekitError, check
from .folder import RunFolder, SaveRun
from .models.base import ModelConfig
from .models.types import get_model_class, model_from_config
from .run import Run, make_config, run_folder
from .runfiles import CHECKPOINT, METRICS, load_state, read_config
from .trainer import Callback, Trainer, resolve_device


def train(
    data: str | os.PathLike | Splits = "mnist",
    model: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    data_dir: str | os.PathLike | None = None,
    callbacks: Iterable[Callback] = (),
    config: Mapping[str, Any] | None = None,
    tensorboard: str | os.PathLike | None = None,
    **options: Any,
) -> Run | None:
    """Train an autoencoder and return its Run (folder, model in eval mode, metrics).

    data: a built-in name ("mnist", "digits"), a path, or Splits from aekit.data.load().
    model: a registered type (see list_models()).
    out: the run folder (default runs/<model>-<data>, numbered if taken); with resume=True, the run to
        continue (its config is reused; only epochs, device and quiet may change).
    config: options by section, as a run's config.json holds them: {"model": {...}, "train": {...},
        "data": {...}}.
    tensorboard: a folder to log the run to for TensorBoard (aekit.board; needs the tensorboard package).
    options: the same by name, each put in its section: training options (epochs, batch_size, lr, ...), data
        options (test_split, size, label_column, ...) and the model type's options (latent_dim, hidden, ...).

    Bad options or data raise AekitError before anything is written. Under torchrun (or `aekit train
    --nproc N`) every process calls this; they train one model with DistributedDataParallel, rank 0
    writes the run folder and returns the Run, the others return None.
    """
    if not resume:  # the type: the one asked for, else the type of the run to start from (init), else ae
        init = {**((config or {}).get("train") or {}), **options}.get("init")
        model = model or (read_config(run_folder(init))["model"]["name"] if init else "ae")
    sections = option_sections(None if resume else model, config, options)
    started = distributed.setup()  # under torchrun or --nproc: join the other processes
    try:
        if tensorboard is not None and distributed.world()[0] == 0:
            callbacks = [TensorBoard(tensorboard), *callbacks]
        if resume:
            run = _resume(out, sections, quiet, data_dir, callbacks)
        else:
            run = _new(data, model, out, force, quiet, data_dir, callbacks, sections)
        distributed.barrier()  # no process drops its connections while rank 0 still writes and plots
        return run
    finally:
        if started:
            distributed.teardown()


def option_sections(
    model: str | None, config: Mapping[str, Any] | None, options: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """{"model", "train", "data"} option sections from a config's sections and options given by name (a name
    goes to the section whose dataclass declares it; for model None, any other name to "model")."""
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    for key, section in (config or {}).items():
        check(key in sections, f"config: unknown section {key!r}; expected model, train, data")
        check(isinstance(section, Mapping), f"config: the {key!r} section must be an object of options")
        sections[key].update(section)
    homes = {"train": field_names(TrainConfig), "data": field_names(DataConfig) - {"source"}}
    if model is not None:
        homes["model"] = field_names(get_model_class(model).Config) - {"input_shape"}
    for key, value in options.items():
        home = next((name for name, fields in homes.items() if key in fields), None if model else "model")
        check(home is not None, f"unknown option {key!r} for a {model} model (see: aekit train --help)")
        sections[home][key] = (
            list(value) if isinstance(value, tuple) else os.fspath(value) if isinstance(value, os.PathLike) else value
        )
    if isinstance(sections["data"].get("classes"), list):  # labels may be given as numbers in Python
        sections["data"]["classes"] = [str(c) for c in sections["data"]["classes"]]
    return sections


def _new(data, model, out, force, quiet, data_dir, callbacks, sections) -> Run | None:
    train_cfg = from_dict(TrainConfig, sections["train"], "train")  # epochs and batch size: the data's, below
    if isinstance(data, Splits):
        given = ", ".join(sections["data"])
        check(not given, f"{given}: data options apply to a dataset name or path, not to Splits")
        splits, data_cfg = data, DataConfig(source=f"<in-memory {data.train.name}>")
    else:
        data_cfg = from_dict(DataConfig, {"source": str(data), **sections["data"]}, "data")
    get_model_class(model)  # unknown names fail before the data is read
    start = _init(train_cfg.init, model, sections["model"])
    if not isinstance(data, Splits):
        if _any_size(sections["model"]):
            data_cfg = with_photo_crop(data_cfg)
        splits = load_config(data_cfg, data_dir=data_dir)
    net = _build_model(model, splits.train.item_shape, _with_classes(sections["model"], splits), train_cfg.seed)
    if start is not None:
        load_state(net, start.model.state_dict(), f"--init {train_cfg.init}")
    train_cfg = train_cfg.for_data(len(splits.train), net.config.train_defaults())
    resolve_device(train_cfg.device)
    config = make_config(net, train_cfg, data_cfg, splits.train.scaling)
    name = f"{model}-{Path(splits.train.name).stem}"
    folder = distributed.on_rank0(lambda: RunFolder.stage(out, name, force, config))  # rank 0 writes the run
    with folder or contextlib.nullcontext():
        trainer = Trainer(net, splits, train_cfg, _callbacks(quiet, callbacks, folder))
        distributed.on_rank0(lambda: (folder.save(trainer.state_dict()), folder.place()))  # epoch 0, then in place
        return _train_and_open(trainer, config)


def _init(init: str | None, model: str, options: dict[str, Any]) -> Run | None:
    """The run to start from (train.init), opened, its model options put under those given (in place); None
    without one."""
    if init is None:
        return None
    start = Run.open(init)
    check(
        start.model.name == model,
        f"--init {init} is a {start.model.name}; drop --model {model}, or start from a run of that type",
    )
    derived = {"name", "input_shape"} | ({"latent_dim"} if start.model.config.any_size else set())  # from the data
    inherited = {k: v for k, v in start.config["model"].items() if k not in derived}
    options.update({**inherited, **options})
    return start


def _any_size(options: dict[str, Any]) -> bool:
    """Whether a model with these options takes images of any size (its backbone is fully convolutional)."""
    return ModelConfig(input_shape=(3, 64, 64), backbone=options.get("backbone", "mlp")).any_size


def _with_classes(options: dict[str, Any], splits: Splits) -> dict[str, Any]:
    """The model options, with a conditional model's classes counted from the data's labels (its class names, else
    the largest label over both parts, plus one). AekitError for a conditional model of data without labels."""
    if not options.get("conditional"):
        return options
    parts = [part for part in splits if part is not None]
    check(
        all(part.y is not None for part in parts),
        f"--conditional trains on (item, label) pairs; {splits.train.name} has no labels (a folder's labels are its "
        "subfolders' names, an .npz's its array y, a table's the column --label-column names)",
    )
    classes = len(splits.train.classes) if splits.train.classes else max(int(p.y.max()) + 1 for p in parts if len(p.y))
    return {**options, "classes": classes}


def _build_model(name: str, input_shape: tuple[int, ...], options: dict[str, Any], seed: int):
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    return model_from_config({"name": name, "input_shape": list(input_shape), **options})


def _callbacks(quiet: bool, extra: Iterable[Callback], folder: RunFolder | None) -> list[Callback]:
    """Where there is a run folder (rank 0), its checkpoints first (SaveRun: saved before anything reports the
    epoch); on rank 0 only, Progress (its notes alone when quiet); the run folder's figures; extra."""
    saved = [SaveRun(folder)] if folder is not None else []
    shown = [] if distributed.world()[0] != 0 else [Notes() if quiet else Progress()]
    return saved + shown + ([RunFigures()] if folder is not None else []) + list(extra)


def _resume(out, sections, quiet, data_dir, callbacks) -> Run | None:
    check(out is not None, "resume needs the run folder to continue (--resume RUN)")
    train_opts = sections["train"]
    changed = sorted(set(train_opts) - {"epochs", "minutes", "device"} | set(sections["data"]) | set(sections["model"]))
    check(
        not changed,
        f"--resume continues {out} with its own settings; only epochs, minutes and device may change (got "
        f"{', '.join(changed)})",
    )
    check((Path(out) / CHECKPOINT).exists(), f"{out}: no checkpoint to resume from")
    folder = distributed.on_rank0(lambda: RunFolder.reopen(Path(out)))
    with folder or contextlib.nullcontext():
        run = Run.open(out)
        run.config["train"] = {**run.config["train"], **train_opts}
        train_cfg = from_dict(TrainConfig, run.config["train"], "train")
        data = run.load_data(data_dir=data_dir)
        trainer = Trainer(run.model, data, train_cfg, _callbacks(quiet, callbacks, folder))
        trainer.load_checkpoint(run.path / CHECKPOINT)
        check(not trainer.finished, f"{out} has already trained {_trained(trainer)}")
        if folder is not None:
            folder.write_config(run.config)
        return _train_and_open(trainer, run.config)


def _trained(trainer: Trainer) -> str:
    """What a finished run has trained and how to train it further."""
    if trainer.budget is None or trainer.epoch >= (trainer.config.epochs or math.inf):
        return f"{trainer.epoch} epochs; pass a larger --epochs to train on"
    done = f"{trainer.spent_s / 60:.1f} of {trainer.config.minutes:g} minutes"
    return f"{trainer.epoch} epochs in {done}; pass a larger --minutes to train on"


def _train_and_open(trainer: Trainer, config: dict[str, Any]) -> Run | None:
    """Train; the Run of the folder on rank 0, None on the other ranks."""
    _fit(trainer)
    if trainer.run_dir is None:
        return None
    return Run(trainer.run_dir, config, trainer.model.eval(), disk.read_json(trainer.run_dir / METRICS))


def _fit(trainer: Trainer) -> None:
    """trainer.fit(); Ctrl-C names the folder to resume, and a lost process of a multi-process job is one line."""
    try:
        trainer.fit()
    except KeyboardInterrupt as e:
        e.run_dir = trainer.run_dir  # the CLI names the folder to resume
        raise
    except RuntimeError as e:  # gloo or NCCL: another process of the job has gone
        if trainer.world == 1:
            raise
        why = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip()).split(". ")[0][:160] or type(e).__name__
        kept = ""
        if trainer.run_dir is not None:
            kept = f"; {trainer.run_dir} keeps epoch {trainer.epoch}: aekit train --resume {trainer.run_dir}"
        raise AekitError(f"a process of this {trainer.world}-process job stopped ({why}){kept}") from None
