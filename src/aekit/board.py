"""Watching training in TensorBoard: `aekit train --tensorboard DIR`, `aekit.train(..., tensorboard=DIR)`.

Written through torch's SummaryWriter (the `tensorboard` package: `pip install 'aekit[tensorboard]'`), every event
at the optimizer step it belongs to (the x axis of every chart):
  step/loss, step/KEY  the training loss of every step and the model's other numbers (mse, kl, bits, ...), read
                       back once an epoch (no device sync a step)
  epoch/KEY            each number of the epoch's record in metrics.json (epoch, train_loss, test_loss, time_s,
                       ...) at the epoch's last step
  reconstructions      for images, eight held-out items over their reconstructions, each epoch
  config               the run's config.json as text; hparams: the model and training options beside the final
                       epoch's numbers (the HPARAMS tab)
A resumed run writes on into the same DIR from its checkpoint's step (events a killed run wrote after it are
purged).
"""

from __future__ import annotations

import os

import torch

from . import disk
from .errors import AekitError
from .runfiles import CONFIG
from .trainer import Callback, Trainer

SHOWN = 8  # held-out items in the reconstruction grid


def writer_class():
    """torch's SummaryWriter, or a one-line error naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AekitError("--tensorboard needs the tensorboard package: pip install 'aekit[tensorboard]'") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Logs a run to an event file in log_dir (created if missing)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.writer_class = writer_class()  # fails before anything is written, not after the first epoch
        self.log_dir = str(log_dir)
        try:
            os.makedirs(log_dir, exist_ok=True)
        except OSError as e:
            raise AekitError(f"--tensorboard {log_dir}: cannot write there ({e.strerror or e})") from None
        self.writer = None
        self.steps: dict[str, list[torch.Tensor]] = {}  # this epoch's numbers of each step, by name

    def on_train_start(self, trainer: Trainer) -> None:
        step = trainer.epoch * trainer.steps_per_epoch
        self.writer = self.writer_class(self.log_dir, purge_step=step + 1 if step else None)
        self.config = disk.read_json(trainer.run_dir / CONFIG) if trainer.run_dir is not None else None
        if self.config is not None and trainer.epoch == 0:
            self.writer.add_text("config", f"```\n{disk.dumps(self.config)}\n```", 0)
        sample = trainer.data.test if trainer.data.test is not None else trainer.data.train
        self.shown = sample.batch(slice(0, SHOWN)) if sample.is_image else None

    def on_step(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        for key, value in (("loss", loss), *trainer.step_logs.items()):
            self.steps.setdefault(key, []).append(value.detach())

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        last = trainer.epoch * trainer.steps_per_epoch
        for key, values in self.steps.items():
            first = last - len(values) + 1
            for i, value in enumerate(torch.stack(values).float().cpu().tolist()):
                self.writer.add_scalar(f"step/{key}", value, first + i)
        self.steps.clear()
        for key, value in record.items():
            self.writer.add_scalar(f"epoch/{key}", value, last)
        if self.shown is not None:
            self.writer.add_image("reconstructions", self._grid(trainer), last)
        self.writer.flush()

    @torch.inference_mode()
    def _grid(self, trainer: Trainer) -> torch.Tensor:
        """(C, 2H, SHOWN*W): the items over their reconstructions, values in [0, 1]."""
        model = trainer.model.eval()
        x = self.shown.to(trainer.device)
        x_hat = model.reconstruct(x).float().clamp(0, 1).cpu()
        rows = [torch.cat(list(batch), dim=-1) for batch in (self.shown.float(), x_hat)]
        return torch.cat(rows, dim=-2)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.history and self.config is not None:
            options = {**self.config["model"], **self.config["train"]}
            hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in options.items()}
            final = {f"hparam/{k}": v for k, v in trainer.history[-1].items() if k != "epoch"}
            step = trainer.epoch * trainer.steps_per_epoch
            self.writer.add_hparams(hparams, final, run_name=".", global_step=step)
        self.writer.close()
