"""One model-agnostic training loop: epoch -> step -> eval, callbacks for everything else.

The data lives in memory (on the device where it fits); a batch is an index slice of a seeded permutation, so there
is no per-sample Python in the loop. A model only has to return an Output with .loss and .logs; what else it can
do it declares (Capabilities). The Trainer's state_dict() is what a checkpoint holds: saving it after each epoch
is a callback's job (folder.SaveRun)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, distributed
from .config import DEFAULT_STEPS, TrainConfig, lr_factor
from .data.datasets import Dataset
from .data.splits import Splits
from .errors import AekitError, check
from .limits import INFERENCE_BATCH, check_load_size

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
    """Hooks the Trainer calls; override what you need (progress bars, logging, saving). run_dir: where a callback
    that saves the run keeps it (the Trainer names it in messages), None for the others."""

    run_dir: Path | None = None

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...
    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class Trainer:
    """Trains a model on Splits with Adam; callbacks do the rest (progress, saving the run after each epoch).

    state_dict() (weights, optimizer, schedule, RNG states, epochs and history) is what a checkpoint holds and
    load_state_dict restores: a run killed at any moment resumes from its last finished epoch, bit for bit.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: Splits,
        config: TrainConfig,
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
            y = self.labels(data, mine)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                out = model(x) if y is None else model(x, labels=y)
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

    def labels(self, data: Dataset, idx: torch.Tensor | slice) -> torch.Tensor | None:
        """A conditional model's labels of data's items at idx, on the device; None for a model that takes none."""
        if not self.model.config.conditional:
            return None
        idx = idx if isinstance(idx, slice) else idx.to(data.y.device)
        return data.y[idx].to(self.device, torch.long, non_blocking=True)

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
            part = slice(start, start + batch_size)
            x, y = data.batch(part).to(self.device, non_blocking=True), self.labels(data, part)
            _accumulate(totals, model(x) if y is None else model(x, labels=y), len(x))
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
        """Where the run is saved: the folder of the callback that saves it (Callback.run_dir), None if none does."""
        return next((cb.run_dir for cb in self.callbacks if cb.run_dir is not None), None)

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs (checkpoint.py's format): model, optimizer and schedule states, the random states
        (rng: the data order's, PyTorch's CPU generator's and this GPU's), finished epochs and their history."""
        rng = {"order": self.order.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "epoch": self.epoch,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict (one checkpoint.read has checked against this trainer)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.order.set_state(state["rng"]["order"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.epoch, self.history = state["epoch"], state["history"]

    def load_checkpoint(self, path: Path) -> None:
        """Restore the state in the checkpoint file at path, each part checked against this trainer first."""
        self.load_state_dict(checkpoint.read(path, self))


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
