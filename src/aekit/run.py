"""Run folders: a trained model on disk, and loading one back without unpickling anything.

A run folder holds
  config.json             {"aekit_version", "model": {...}, "train": {...}, "data": {...}, "scaling": {...}}
  model.safetensors       the weights
  checkpoint.safetensors  weights + optimizer + RNG state + history of the last finished epoch (for --resume)
  metrics.json            {"history": [...per epoch...], "final": {...}, "evaluation": {...}}
  history.csv             the same history, a row per epoch (for a spreadsheet or pandas)
  loss_curve.png, reconstructions.png, for a VAE samples.png
  .lock                   held (flock) while a process trains the run or stores metrics in it
  .aekit-output           the manifest of the figures and outputs aekit wrote there (disk.MANIFEST)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from safetensors.torch import save as safetensors_bytes

from . import __version__, disk, pretrained
from .config import DataConfig, TrainConfig, from_dict
from .data.datasets import Dataset, MappedDataset, Photos
from .data.images import IMAGE_SUFFIXES
from .data.registry import input_paths, many_files
from .data.scaling import Scaling
from .data.splits import Splits, class_mask, from_array, load_config, load_photos
from .errors import AekitError, check, note
from .lock import LOCK
from .models.types import model_from_config

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"
HISTORY = "history.csv"
FIGURES = ("loss_curve.png", "reconstructions.png", "samples.png")
RUN_FILES = {CONFIG, WEIGHTS, CHECKPOINT, METRICS, HISTORY, *FIGURES, LOCK, disk.MANIFEST}  # what a run holds
CONFIG_KEYS = {"aekit_version", "model", "train", "data", "scaling"}
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def _safetensors_header(path: Path) -> dict | None:
    """The JSON header of a safetensors file (8 bytes: its length N, little-endian; then N bytes of a JSON
    object), or None if the file is not shaped like one. The format is recognised by parsing, not by a byte."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= min(size - 8, MAX_SAFETENSORS_HEADER):
                return None
            text = f.read(n)
    except FileNotFoundError:
        raise AekitError(f"{path}: missing") from None
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        header = disk.parse_json(text, str(path))
    except AekitError:
        return None
    return header if isinstance(header, dict) else None


def _is_pickle(path: Path) -> bool:
    """Whether path looks like a torch.save file (a zip archive, or a pickle of protocol 2 to 5)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into CPU tensors and its metadata; refuse anything else (pickles included)."""
    if _safetensors_header(path) is None:
        if _is_pickle(path):
            raise AekitError(f"{path}: is a pickle (torch.save) file; aekit loads only safetensors and never unpickles")
        raise AekitError(f"{path}: not a valid safetensors file (no JSON header of a sane length)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise AekitError(f"{path}: not a valid safetensors file ({e})") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors (moved to CPU, made contiguous) as a safetensors file."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    disk.write_bytes(path, safetensors_bytes(data, metadata=metadata))


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Copy tensors into model, checked first (check_state). A float16 tensor may stand for a float32 weight (the
    shipped models are stored at half size) and is widened."""
    check_state(model, tensors, path)
    model.load_state_dict(tensors)


def check_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """AekitError unless tensors are weights for model: the same names, shapes and dtypes (float16 for float32
    allowed), every value finite."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    check(
        not missing and not extra,
        f"{path}: weights do not match the model in config.json (missing {missing[:3]}, unexpected {extra[:3]})",
    )
    for k, v in own.items():
        t = tensors[k]
        check(
            t.shape == v.shape and (t.dtype == v.dtype or (t.dtype, v.dtype) == (torch.float16, torch.float32)),
            f"{path}: weight {k} has shape {list(t.shape)} ({str(t.dtype)[6:]}), the model expects "
            f"{list(v.shape)} ({str(v.dtype)[6:]})",
        )
        check(
            not t.is_floating_point() or bool(torch.isfinite(t).all()),
            f"{path}: weight {k} holds NaN or infinite values; the file is damaged (retrain, or restore it)",
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
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
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


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a run folder's config.json."""
    config = disk.read_json(path / CONFIG)
    check(isinstance(config, dict), f"{path / CONFIG}: expected a JSON object")
    check_version(config.get("aekit_version"), path / CONFIG)
    unknown = sorted(set(config) - CONFIG_KEYS)
    check(not unknown, f"{path / CONFIG}: unknown section(s) {unknown}")
    for key in ("model", "train", "data", "scaling"):
        check(key in config, f"{path / CONFIG}: no {key!r} section")
    from_dict(TrainConfig, config["train"], "train")
    from_dict(DataConfig, config["data"], "data")
    features = Scaling.from_dict(config["scaling"]).features
    shape = config["model"].get("input_shape") if isinstance(config["model"], dict) else None
    check(
        features is None or shape == [features],
        f"{path / CONFIG}: a per-feature scaling of {features} features does not fit input_shape {shape}",
    )
    return config


def check_version(version: Any, where: Path) -> None:
    """AekitError unless version is an aekit version string no newer (major.minor) than this aekit's."""
    match = isinstance(version, str) and re.fullmatch(r"(\d{1,6})\.(\d{1,6})\.\d{1,6}\S{0,40}", version)
    check(bool(match), f"{where}: aekit_version must be a version string like {__version__!r}, got {version!r}"[:300])
    made, ours = tuple(map(int, match.groups())), tuple(map(int, __version__.split(".")[:2]))
    check(made <= ours, f"{where}: made by aekit {version}, newer than this aekit {__version__}; upgrade aekit")


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


def update_metrics(folder: Path, **sections: Any) -> dict[str, Any]:
    """Merge sections into FOLDER/metrics.json, written atomically; returns the whole of it."""
    path = folder / METRICS
    metrics = disk.read_json(path) if path.exists() else {}
    check(isinstance(metrics, dict), f"{path}: expected a JSON object")
    metrics.update(sections)
    disk.write_json(path, metrics)
    return metrics


def write_history(folder: Path, history: list[dict[str, float]]) -> None:
    """FOLDER/history.csv, written atomically: a row per epoch, a column per key of any epoch's record (in the order
    they first appear; empty where an epoch lacks one)."""
    columns = list(dict.fromkeys(key for record in history for key in record))
    lines = [",".join(columns)]
    lines += [",".join(format(record[k], ".10g") if k in record else "" for k in columns) for record in history]
    disk.write_bytes(folder / HISTORY, ("\n".join(lines) + "\n").encode())


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
