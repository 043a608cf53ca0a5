"""Run folders opened: a trained model on disk loaded back (Run, load), its data and the items a use takes. What a
run folder holds, and the strict readers and writers of its files, are runfiles.py's."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, disk, pretrained
from .config import DataConfig, TrainConfig, from_dict
from .data.datasets import Dataset, MappedDataset, Photos
from .data.images import IMAGE_SUFFIXES
from .data.registry import input_paths, many_files
from .data.scaling import Scaling
from .data.splits import Splits, class_mask, from_array, load_config, load_photos
from .errors import AekitError, check, note
from .models.types import model_from_config
from .runfiles import (
    CONFIG,
    METRICS,
    PICKLE_SUFFIXES,
    WEIGHTS,
    load_state,
    read_config,
    read_tensors,
    update_metrics,
)


def run_folder(path: str | os.PathLike) -> Path:
    """The run folder at path, or the folder of the model that ships with aekit by that name where there is no
    such folder (aekit.pretrained); AekitError naming the shipped models if neither exists."""
    path = Path(path)
    if path.is_dir():
        return path
    shipped = pretrained.path_of(path)
    known = ", ".join(pretrained.names()) or "none here"
    check(shipped is not None, f"{path}: no such run folder, nor a model that ships with aekit ({known})")
    return shipped


@dataclass
class Run:
    """A run folder opened: its config sections, its model (eval mode) and its metrics."""

    path: Path
    config: dict[str, Any]
    model: torch.nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
        """Open the run folder at path, or the shipped model of that name (aekit.pretrained) where no such folder
        exists, loading its weights (never unpickling) onto device."""
        path = run_folder(path)
        weights_path = path / WEIGHTS
        if not weights_path.exists():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if pickles:
                raise AekitError(
                    f"{path}: holds {pickles[0]} but no {WEIGHTS}; aekit loads only safetensors "
                    "weights and never unpickles"
                )
        config = read_config(path)
        model = model_from_config(config["model"], where=str(path / CONFIG))
        tensors, _ = read_tensors(weights_path)
        load_state(model, tensors, weights_path)
        metrics = disk.read_json(path / METRICS) if (path / METRICS).exists() else {}
        check(isinstance(metrics, dict), f"{path / METRICS}: expected a JSON object")
        return cls(path, config, model.to(device).eval(), metrics)

    @property
    def shipped(self) -> bool:
        """Whether this is a model that ships with aekit (read-only: nothing is stored in it)."""
        return pretrained.is_shipped(self.path)

    @property
    def scaling(self) -> Scaling:
        return Scaling.from_dict(self.config["scaling"])

    @property
    def data_config(self) -> DataConfig:
        return from_dict(DataConfig, self.config["data"], "data")

    @property
    def train_config(self) -> TrainConfig:
        return from_dict(TrainConfig, self.config["train"], "train")

    def same_source(self, source: str | os.PathLike | np.ndarray) -> bool:
        """Whether source names the run's own data (a built-in by name, a file or folder however spelled)."""
        if isinstance(source, np.ndarray):
            return False
        own = self.data_config.source
        if str(source) == own:
            return True
        given, mine = Path(source).expanduser(), Path(own).expanduser()
        return given.exists() and mine.exists() and given.resolve() == mine.resolve()

    def input_paths(
        self, source: str | os.PathLike | np.ndarray | None = None, data_dir: str | os.PathLike | None = None
    ) -> list[Path]:
        """What a use of the run reads, which none of its outputs may be or hold: the run folder, and the files and
        folders of source (default: the run's own data)."""
        if isinstance(source, np.ndarray):
            return [self.path]
        return [self.path, *input_paths(self.data_config.source if source is None else source, data_dir)]

    def load_data(
        self, source: str | os.PathLike | np.ndarray | None = None, data_dir: str | os.PathLike | None = None
    ) -> Splits:
        """The run's data prepared with the run's scaling, shape-checked against the model; or another source
        (every item of it, whatever the run's data.classes; for the run's own source, the same hold-out): a
        name, a path or a numpy array of items in their own units."""
        cfg = self.data_config
        if isinstance(source, np.ndarray):
            return self._checked(from_array(source, self.scaling), "the array")
        if source is not None and not self.same_source(source):
            path = Path(source).expanduser()
            if self.model.config.any_size and _images(path):  # whole, at their own sizes
                return self._checked(Splits(load_photos(path), None), str(source))
            cfg = DataConfig(str(source), 0.0, cfg.size, cfg.label_column, cfg.split_seed)
        elif source is not None:  # the run's own data, all of it (its hold-out kept apart)
            cfg = dataclasses.replace(cfg, classes=None)
        return self._checked(load_config(cfg, data_dir=data_dir, scaling=self.scaling), cfg.source)

    def _checked(self, splits: Splits, source: str) -> Splits:
        expected, got = tuple(self.model.config.input_shape), splits.train.item_shape
        grey_rgb = splits.train.is_image and len(expected) == 3 and {expected[0], got[0]} == {1, 3}
        if grey_rgb and not isinstance(splits.train, MappedDataset):  # grey photos for an RGB model, or RGB for grey
            how = "grey images used as RGB (the grey in each channel)" if got[0] == 1 else "RGB images used as grey"
            note(f"{source}: {how}; the model in {self.path} takes {'RGB' if expected[0] == 3 else 'grey'} images")
            splits = Splits(*(None if part is None else part.with_channels(expected[0]) for part in splits))
            got = splits.train.item_shape
        message = f"{source}: items have shape {list(got)} but the model in {self.path} expects {list(expected)}"
        if isinstance(splits.train, Photos):  # any size, the model's channels
            expected, got = expected[:1], got[:1]
            message = f"{source}: items have shape {list(got)} but the model in {self.path} expects {list(expected)}"
        elif self.model.config.any_size and len(got) == 3:  # images of any size: a fully convolutional model's
            expected, got = expected[:1], got[:1]
        check(got == expected, message)
        return splits

    def read(
        self,
        source: str | os.PathLike | np.ndarray | None = None,
        split: str | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> tuple[Dataset, str]:
        """The items a use of the model takes, prepared as the run's training data was: (items, which part).

        source: any data aekit reads (default: the run's own). split: "all", "train" or "test" (the part the run
        held out of its own data; a built-in's test split for another built-in). Default: "test" when source is
        not given (all of it if the run held nothing out), else "all".
        """
        items, part, _ = self.read_marked(source, split, data_dir)
        return items, part

    def read_marked(
        self,
        source: str | os.PathLike | np.ndarray | None = None,
        split: str | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> tuple[Dataset, str, np.ndarray]:
        """read(), and which of the items the run trained on (a bool per item): the training part of its own
        data, of its data.classes only; no item of other data."""
        named = self.data_config.source if source is None else "the array" if isinstance(source, np.ndarray) else source
        splits = self.load_data(source, data_dir)
        items, part = splits.part(split or ("test" if source is None else "all"), str(named), strict=split is not None)
        trained = np.zeros(len(items), dtype=bool)
        if source is None or self.same_source(source):
            trained[: 0 if part == "test" else len(splits.train)] = True  # "all": the training part, then the rest
            classes = self.data_config.classes
            if classes is not None and items.y is not None:
                trained &= class_mask(items.y.numpy(), items.classes, classes, str(named), required=False)
        return items, part, trained

    def update_metrics(self, **sections: Any) -> None:
        """Merge sections into the run's metrics.json (read again first: another process may have written it)."""
        self.metrics = update_metrics(self.path, **sections)


def _images(path: Path) -> bool:
    """Whether path is an image file, a folder or a glob pattern (of images: the folder reader says if not)."""
    return many_files(path) or path.suffix.lower() in IMAGE_SUFFIXES


def make_config(model: torch.nn.Module, train: TrainConfig, data: DataConfig, scaling: Scaling) -> dict[str, Any]:
    """The config.json contents for a run."""
    from .config import to_dict

    return {
        "aekit_version": __version__,
        "model": {"name": model.name, **to_dict(model.config)},
        "train": to_dict(train),
        "data": to_dict(data),
        "scaling": scaling.to_dict(),
    }


def open_run(run: Run | str | os.PathLike) -> Run:
    """run itself if it is an opened Run, else the run folder at that path, opened."""
    return run if isinstance(run, Run) else Run.open(run)


def cpu_run(run: Run | str | os.PathLike) -> Run:
    """The run (opened if a path) with its model on the CPU: itself if it is there, else a copy, so that the
    caller's run stays on its device. For what must not depend on the device (a codec's files and pixels) and
    what is traced on CPU tensors (the ONNX export)."""
    run = open_run(run)
    if run.model.device.type == "cpu":
        return run
    return dataclasses.replace(run, model=copy.deepcopy(run.model).cpu())


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load the trained model from a run folder, in eval mode, on device (never unpickles)."""
    return Run.open(path, device=device).model
