"""One model-agnostic training loop: epoch -> step -> eval -> checkpoint.

The data lives in memory; a batch is an index slice of a seeded permutation, so there is no
per-sample Python in the loop. Models only have to return an Output with .loss and .logs.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, disk, distributed, progress
from .config import DEFAULT_STEPS, DataConfig, TrainConfig, field_names, from_dict, lr_factor
from .data.datasets import Dataset
from .data.splits import Splits, load_config, with_photo_crop
from .errors import AekitError, check
from .folder import RunFolder
from .limits import INFERENCE_BATCH, check_load_size
from .models.base import ModelConfig
from .registry import get_model_class, model_from_config
from .run import CHECKPOINT, METRICS, Run, load_state, make_config, read_config, run_folder

START_ITEMS, START_VALUES = 2048, 2**24  # what Autoencoder.start sees: at most this many items and values
MIN_STEPS = 200  # a run of epochs with fewer optimizer steps is named too short to learn (Trainer.notes)


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA if available, else MPS, else CPU; anything else is checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AekitError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        check(torch.cuda.is_available(), "device cuda was asked for but CUDA is not available; use --device auto")
        check(device.index is None or device.index < torch.cuda.device_count(), f"no such device {name}")
    elif device.type == "mps":
        check(torch.backends.mps.is_available(), "device mps was asked for but MPS is not available")
    else:
        check(device.type == "cpu", f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


class Callback:
    """Hooks the Trainer calls; override what you need (progress bars, logging)."""

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...
    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class Trainer:
    """Trains a model on Splits with Adam, saving into a run folder after every epoch (if folder is given).

    The checkpoint (weights, optimizer, RNG states, history) is one safetensors file written
    atomically, so a run killed at any moment resumes from its last finished epoch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: Splits,
        config: TrainConfig,
        folder: RunFolder | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.device = resolve_device(config.device)
        self.rank, self.world = distributed.world()
        if self.world > 1 and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", distributed.local_rank())  # one GPU per process
            torch.cuda.set_device(self.device)
        self.model = model.to(self.device)
        cuda = self.device.type == "cuda"
        self.channels_last = cuda and model.capabilities.channels_last
        if self.channels_last:  # the layout cuDNN's convolutions are fastest in
            self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what the steps call: the model, or its DistributedDataParallel wrapper
        if self.world > 1:
            distributed.setup()
            ids = [self.device] if cuda else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)  # rank 0's weights
        if config.compile and cuda:
            self.net = torch.compile(self.net)
        self.autocast = cuda and config.precision == "bf16"
        asked = {"bf16": config.precision == "bf16", "compile": config.compile}
        self.ignored = [] if cuda else [name for name, on in asked.items() if on]  # named in the progress line
        self.data = data = Splits(*(_on_device(d, self.device) for d in data))
        self.config = config = config.for_data(len(data.train), model.config.train_defaults())
        _check_training_fits(model, data.train, config.batch_size)
        self.folder = folder if self.rank == 0 else None  # None: keep nothing on disk
        self.callbacks = list(callbacks)
        fused = {"fused": True} if self.device.type in ("cpu", "cuda") else {}
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **fused)
        self.order = torch.Generator().manual_seed(config.seed)  # data order, saved with each checkpoint
        self.history: list[dict[str, float]] = []
        self.step_logs: dict[str, torch.Tensor] = {}
        self.epoch = 0
        self.steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
        self.budget = config.minutes * 60 if config.minutes is not None else None  # seconds of epochs, or None
        self.planned_epochs = config.epochs or 1  # a timed run's: re-estimated as it goes (plan)
        self.prior_s, self.began, self.began_at = 0.0, None, 0  # fit sets them (see spent_s)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(config.schedule, step, self.planned_epochs * self.steps_per_epoch)
        )

    # ---------------------------------------------------------------- the loop

    def fit(self) -> list[dict[str, float]]:
        """Train from the current epoch to config.epochs, or until the epochs' time passes config.minutes;
        returns the per-epoch history."""
        if self.epoch == 0 and self.config.init is None:  # started from a trained model's weights: kept
            self._start()
        self.prior_s = _epochs_s(self.history)
        self.began, self.began_at = time.perf_counter(), self.epoch  # this sitting: its start and first epoch
        self.plan()
        for cb in self.callbacks:
            cb.on_train_start(self)
        while not self.finished:
            start = time.perf_counter()
            record = {"epoch": self.epoch + 1}
            record.update(self.train_epoch())
            if self.data.test is not None and self.rank == 0:
                record.update({f"test_{k}": v for k, v in self.evaluate(self.data.test).items()})
            record["time_s"] = round(time.perf_counter() - start, 4)
            self.model.after_epoch()
            self.epoch += 1
            self.history.append(record)
            self.save_checkpoint()
            self.plan()
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    @property
    def spent_s(self) -> float:
        """Seconds this run has trained: the finished epochs' of earlier sittings (training and evaluation), and
        the wall time of this one since its first epoch began (checkpoints included)."""
        if self.began is None:  # before fit
            return _epochs_s(self.history)
        return self.prior_s + time.perf_counter() - self.began

    @property
    def finished(self) -> bool:
        """Whether the run has trained its epochs, or (timed) its minutes."""
        if self.config.epochs is not None and self.epoch >= self.config.epochs:
            return True
        return self.budget is not None and self.spent_s >= self.budget

    def plan(self, epoch_s: float | None = None, into: float = 0.0) -> None:
        """A timed run's planned epochs (what the learning-rate schedule spans): those finished, and as many
        more as it takes to pass the budget at epoch_s seconds an epoch (default: this sitting's mean, else the
        earlier sittings'; none: one), `into` seconds into the current one. At least the current one, at most
        config.epochs."""
        if self.budget is None:
            return
        sitting = self.epoch - self.began_at
        if epoch_s is None and sitting:
            epoch_s = (time.perf_counter() - self.began) / sitting
        elif epoch_s is None and self.history:
            epoch_s = self.prior_s / len(self.history)
        more = math.ceil(max(0.0, self.budget - self.spent_s + into) / epoch_s) if epoch_s else 1
        self.planned_epochs = int(min(self.config.epochs or math.inf, self.epoch + max(1, more)))

    def _start(self) -> None:
        """The model's data-dependent start (Autoencoder.start) on the first training items (START_ITEMS, fewer
        where they would hold more than START_VALUES numbers), drawn under the run's seed in a random stream of
        its own (training draws what it drew without it); every process of a multi-process job then takes rank
        0's weights."""
        data = self.data.train
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.config.seed)
            items = max(1, min(len(data), START_ITEMS, START_VALUES // math.prod(data.item_shape)))
            idx = torch.arange(items, device=data.device)
            self.model.start(data.training_batch(idx).to(self.device))
        if self.world > 1:
            for tensor in self.model.state_dict().values():
                torch.distributed.broadcast(tensor, 0)

    @torch.enable_grad()  # also when called under torch.no_grad() (a script that only meant its own code)
    def train_epoch(self) -> dict[str, float]:
        """One pass over the training data in shuffled batches; returns mean loss and logs.

        With several processes every one draws the same permutation and takes its slice of each global
        batch; its loss is weighted by its share, so DDP's gradient average is the global batch's gradient.
        """
        model, data, bs = self.net.train(), self.data.train, self.config.batch_size
        perm = torch.randperm(len(data), generator=self.order)
        if self.world > 1:  # per-rank noise (dae, vae) that a resume with the same world size reproduces
            torch.manual_seed(self.config.seed + 1_000_003 * (self.epoch + 1) + 7919 * self.rank)
        totals: dict[str, torch.Tensor] = {}
        first_bad = torch.tensor(-1, device=self.device)  # step of the first non-finite loss, kept on the device
        check_every = 1 if self.device.type == "cpu" else 16  # reading it back syncs an accelerator
        began, first = time.perf_counter(), None  # first: (time, step) at the first check of a sitting's first epoch
        for step, start in enumerate(range(0, len(data), bs)):
            idx = perm[start : start + bs]
            mine, share = idx, 1.0
            if self.world > 1:
                mine = idx.tensor_split(self.world)[self.rank]
                share = len(mine) * self.world / len(idx)
                if len(mine) == 0:  # a last batch smaller than the world: take part with a weight of 0
                    mine, share = idx[:1], 0.0
            x = data.training_batch(mine.to(data.device)).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                out = model(x)
            self.optimizer.zero_grad(set_to_none=True)
            (out.loss * share if share != 1.0 else out.loss).backward()
            if self.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip, foreach=True)
            self.optimizer.step()
            first_bad = torch.where((first_bad < 0) & ~out.loss.detach().isfinite(), step, first_bad)
            if (step + 1) % check_every == 0 or start + bs >= len(data):
                self._stop_if_diverged(int(first_bad), out.loss.detach())
                if self.budget is not None and self.epoch == self.began_at:  # a timed sitting's first epoch: its
                    now = time.perf_counter()  # length from the steps after the first (which also allocates)
                    first = first or (now, step)
                    if step > first[1]:
                        self.plan((now - first[0]) / (step - first[1]) * self.steps_per_epoch, now - began)
            self.scheduler.step()  # the next step's learning rate, from the plan
            _accumulate(totals, out, len(x) if share else 0)
            self.step_logs = out.logs  # the step's own numbers (mse, kl, bits, ...), for callbacks that log them
            for cb in self.callbacks:
                cb.on_step(self, step, out.loss)
        sums = distributed.all_sum(totals, self.device)
        return {f"train_{k}": v / len(data) for k, v in sums.items()}

    def _stop_if_diverged(self, step: int, loss: torch.Tensor) -> None:
        if step < 0:
            return
        kept = f"{self.run_dir} keeps the checkpoint of epoch {self.epoch}; " if self.run_dir else "nothing saved; "
        clip = "" if self.config.grad_clip is not None else " or clip them (--grad-clip 1.0)"
        value = float(loss) if not math.isfinite(float(loss)) else "nan or inf"  # accelerators check late
        raise AekitError(
            f"training stopped: the loss became {value} at epoch {self.epoch + 1}, step {step + 1} of "
            f"{self.steps_per_epoch}; {kept}likely causes: a learning rate too high (lr {self.config.lr}: try a "
            f"tenth), exploding gradients (try a lower lr{clip}), or extreme values in the data"
        )

    @torch.inference_mode()
    def evaluate(self, data: Dataset, batch_size: int = INFERENCE_BATCH) -> dict[str, float]:
        """Mean loss and logs of the model (eval mode) over data."""
        model = self.model.eval()  # not the DDP wrapper: rank 0 evaluates alone
        totals: dict[str, torch.Tensor] = {}
        for start in range(0, len(data), batch_size):
            x = data.batch(slice(start, start + batch_size)).to(self.device, non_blocking=True)
            _accumulate(totals, model(x), len(x))
        return _means(totals, len(data))

    # ---------------------------------------------------------------- checkpoints

    def notes(self) -> list[str]:
        """What a person should know before this run starts: options that do nothing here, a run too short to
        learn much and what to run instead, a KL warm-up that cannot finish (the last two: runs of epochs)."""
        notes = [f"{', '.join(self.ignored)} apply on CUDA only; training in fp32 here"] if self.ignored else []
        if self.budget is not None:
            return notes
        total, per_epoch = self.planned_epochs * self.steps_per_epoch, self.steps_per_epoch
        if total < MIN_STEPS:
            default = TrainConfig().for_data(len(self.data.train), self.model.config.train_defaults()).batch_size
            smaller = f" or a smaller batch (--batch-size {default})" if self.config.batch_size > default else ""
            notes.append(
                f"only {total} optimizer steps in all ({per_epoch} per epoch), too few to learn much: train "
                f"{math.ceil(DEFAULT_STEPS / per_epoch)} epochs for {DEFAULT_STEPS} steps (--epochs), or for a time "
                f"(--minutes){smaller}"
            )
        return notes + self.model.training_notes(total)

    @property
    def epochs_label(self) -> str:
        """The epochs the run will train, for progress lines: "20", or a timed run's estimate "~20 (30 min)"."""
        if self.budget is None:
            return str(self.planned_epochs)
        return f"~{self.planned_epochs} ({self.config.minutes:g} min)"

    @property
    def run_dir(self) -> Path | None:
        """Where the run is saved (None when nothing is)."""
        return self.folder.path if self.folder is not None else None

    def save_checkpoint(self) -> None:
        """Save the run's state into its folder (the resume point, the weights and the metrics)."""
        if self.folder is not None:
            self.folder.save(self)

    def load_checkpoint(self, path: Path | None = None) -> None:
        """Restore weights, optimizer, RNG states and history from a checkpoint (default: the run folder's),
        each part checked against this trainer's model and optimizer first."""
        checkpoint.load(path or self.run_dir / CHECKPOINT, self)


def _check_training_fits(model: torch.nn.Module, data: Dataset, batch_size: int) -> None:
    """Refuse a model and batch size whose training cannot fit: 16 bytes a weight (the weight, its gradient and
    Adam's two moments) and at least 24 bytes a value of a batch (input, output, their gradients)."""
    weights = sum(p.numel() for p in model.parameters())
    batch, values = min(batch_size, len(data)), math.prod(data.item_shape)
    check_load_size(
        16 * weights + 24 * batch * values,
        "training",
        f"{weights:,} weights with Adam and batches of {batch} items of {values:,} values",
        "; lower --batch-size or the model's sizes",
    )


def _on_device(data: Dataset | None, device: torch.device) -> Dataset | None:
    """An in-memory dataset moved onto a CUDA device once if it takes under a third of its free memory, so
    batches never cross the bus; anything else as it is."""
    if data is None or device.type != "cuda" or data.device.type == "cuda":
        return data
    free, _ = torch.cuda.mem_get_info(device)
    return data.to(device) if data.x.nbytes <= free // 3 else data


def _epochs_s(history: list[dict[str, float]]) -> float:
    """Seconds of the epochs in a history (their training and evaluation)."""
    return sum(record.get("time_s", 0.0) for record in history)


def _accumulate(totals: dict[str, torch.Tensor], out, n: int) -> None:
    # Sums stay tensors on the device: no host sync per step.
    for key, value in (("loss", out.loss.detach()), *out.logs.items()):
        totals[key] = totals.get(key, 0) + value.detach().float() * n


def _means(totals: dict[str, torch.Tensor], n: int) -> dict[str, float]:
    return {k: float(v) / n for k, v in totals.items()}


# ---------------------------------------------------------------- progress


class Notes(Callback):
    """What a person should know before a run starts (Trainer.notes), a line each on stderr: shown also where
    progress is not (quiet)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr

    def on_train_start(self, trainer: Trainer) -> None:
        for note in trainer.notes():
            print(f"note: {note}", file=self.stream)


class Progress(Notes):
    """A tqdm bar per epoch with the live loss on a terminal; otherwise one line per epoch, and within an epoch
    longer than progress.INTERVAL a line per interval. The run's notes after its first line."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream)
        self.bar = None
        self.last = 0.0  # when the bar last showed the loss

    def on_train_start(self, trainer: Trainer) -> None:
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        n = len(trainer.data.train)
        held = f", {len(trainer.data.test)} held out" if trainer.data.test is not None else ""
        print(
            f"training {trainer.model.name} on {trainer.data.train.name} ({n} items{held}) on {trainer.device}, "
            f"epochs {trainer.epoch + 1}-{trainer.epochs_label} -> {trainer.run_dir}",
            file=self.stream,
        )
        c = trainer.config
        print(
            f"{trainer.steps_per_epoch} steps an epoch of batches of {c.batch_size}, lr {c.lr:g} {c.schedule}",
            file=self.stream,
        )
        super().on_train_start(trainer)
        self.logged = time.monotonic()  # when the last line was written

    def on_step(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if not self.tty:  # a log: a line within an epoch that runs longer than progress.INTERVAL
            now = time.monotonic()
            if now - self.logged >= progress.INTERVAL:
                where = f"epoch {trainer.epoch + 1}/{trainer.epochs_label}: step {step + 1}/{trainer.steps_per_epoch}"
                print(f"{where}  loss {loss.item():.4g}", file=self.stream, flush=True)
                self.logged = now
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=trainer.steps_per_epoch,
                desc=f"epoch {trainer.epoch + 1}/{trainer.epochs_label}",
                file=self.stream,
                leave=False,
                unit="batch",
                dynamic_ncols=True,
            )
        self.bar.update(1)
        now = time.monotonic()
        if now - self.last > 0.25:  # reading the loss syncs the device: a few times a second is enough
            self.bar.set_postfix(loss=f"{loss.item():.4g}")
            self.last = now

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        self.logged = time.monotonic()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        parts = [f"epoch {record['epoch']}/{trainer.epochs_label}"]
        parts += [f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "time_s")]
        parts.append(f"{record['time_s']:.2f}s")
        print("  ".join(parts), file=self.stream, flush=True)


# ---------------------------------------------------------------- the public entry point


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
            from .board import TensorBoard

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
    net = _build_model(model, splits.train.item_shape, sections["model"], train_cfg.seed)
    if start is not None:
        load_state(net, start.model.state_dict(), f"--init {train_cfg.init}")
    train_cfg = train_cfg.for_data(len(splits.train), net.config.train_defaults())
    resolve_device(train_cfg.device)
    config = make_config(net, train_cfg, data_cfg, splits.train.scaling)
    name = f"{model}-{Path(splits.train.name).stem}"
    folder = distributed.on_rank0(lambda: RunFolder.stage(out, name, force, config))  # rank 0 writes the run
    with folder or contextlib.nullcontext():
        trainer = Trainer(net, splits, train_cfg, folder, _callbacks(quiet, callbacks, folder is not None))
        distributed.on_rank0(lambda: (trainer.save_checkpoint(), folder.place()))  # epoch 0, then in place
        return _finish(trainer, config)


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


def _build_model(name: str, input_shape: tuple[int, ...], options: dict[str, Any], seed: int):
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    return model_from_config({"name": name, "input_shape": list(input_shape), **options})


def _callbacks(quiet: bool, extra: Iterable[Callback], saved: bool) -> list[Callback]:
    """On rank 0 only, Progress (its notes alone when quiet); the run folder's figures (when there is a folder);
    extra."""
    shown = [] if distributed.world()[0] != 0 else [Notes() if quiet else Progress()]
    return shown + ([RunFigures()] if saved else []) + list(extra)


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
        trainer = Trainer(run.model, data, train_cfg, folder, _callbacks(quiet, callbacks, folder is not None))
        trainer.load_checkpoint(run.path / CHECKPOINT)
        check(not trainer.finished, f"{out} has already trained {_trained(trainer)}")
        if folder is not None:
            folder.write_config(run.config)
        return _finish(trainer, run.config)


def _trained(trainer: Trainer) -> str:
    """What a finished run has trained and how to train it further."""
    if trainer.budget is None or trainer.epoch >= (trainer.config.epochs or math.inf):
        return f"{trainer.epoch} epochs; pass a larger --epochs to train on"
    done = f"{trainer.spent_s / 60:.1f} of {trainer.config.minutes:g} minutes"
    return f"{trainer.epoch} epochs in {done}; pass a larger --minutes to train on"


def _finish(trainer: Trainer, config: dict[str, Any]) -> Run | None:
    """Train; the Run of the folder on rank 0, None on the other ranks."""
    _fit(trainer)
    if trainer.folder is None:
        return None
    return Run(trainer.run_dir, config, trainer.model.eval(), disk.read_json(trainer.run_dir / METRICS))


class RunFigures(Callback):
    """At the end of training, the run folder's figures: loss curves, reconstructions of held-out items, and
    samples from the prior for a model that has one."""

    def on_train_end(self, trainer: Trainer) -> None:
        from . import plots

        path, model = trainer.run_dir, trainer.model.eval()
        title = f"{model.name} on {trainer.data.train.name}"
        disk.write_bytes(path / "loss_curve.png", plots.loss_curves(trainer.history, title=title), record=True)
        sample = trainer.data.test if trainer.data.test is not None else trainer.data.train
        x = sample.batch(slice(0, 8)).to(trainer.device)
        figure = plots.reconstructions(x.cpu(), model.reconstruct(x).cpu())
        disk.write_bytes(path / "reconstructions.png", figure, record=True)
        if model.capabilities.samples and sample.is_image:
            generated = model.sample(64, generator=torch.Generator(trainer.device).manual_seed(0))
            figure = plots.image_grid(generated.cpu(), title=f"{model.name}: samples from the prior")
            disk.write_bytes(path / "samples.png", figure, record=True)


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
