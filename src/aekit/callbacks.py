"""What the `train` command shows and leaves besides the model: the notes before a run, its progress, and the run
folder's figures at its end (Trainer callbacks)."""

from __future__ import annotations

import sys
import time

import torch

from . import disk, plots, progress
from .trainer import Callback, Trainer


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


class RunFigures(Callback):
    """At the end of training, the run folder's figures: loss curves, reconstructions of held-out items, and
    samples from the prior for a model that has one."""

    def on_train_end(self, trainer: Trainer) -> None:

        path, model = trainer.run_dir, trainer.model.eval()
        title = f"{model.name} on {trainer.data.train.name}"
        disk.write_bytes(path / "loss_curve.png", plots.loss_curves(trainer.history, title=title), record=True)
        sample = trainer.data.test if trainer.data.test is not None else trainer.data.train
        x = sample.batch(slice(0, 8)).to(trainer.device)
        figure = plots.reconstructions(x.cpu(), model.reconstruct(x, labels=trainer.labels(sample, slice(0, 8))).cpu())
        disk.write_bytes(path / "reconstructions.png", figure, record=True)
        if model.capabilities.samples and sample.is_image:
            generated, columns = model.sample_grid(64, torch.Generator(trainer.device).manual_seed(0))
            figure = plots.image_grid(generated.cpu(), columns, title=f"{model.name}: samples from the prior")
            disk.write_bytes(path / "samples.png", figure, record=True)
