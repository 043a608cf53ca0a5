"""The files of a run folder and their strict readers and writers (safetensors only: nothing is ever unpickled).

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

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from safetensors.torch import save as safetensors_bytes

from . import __version__, disk
from .config import DataConfig, TrainConfig, from_dict
from .data.scaling import Scaling
from .errors import AekitError, check
from .lock import LOCK

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"
HISTORY = "history.csv"
FIGURES = ("loss_curve.png", "reconstructions.png", "samples.png")
RUN_FILES = {CONFIG, WEIGHTS, CHECKPOINT, METRICS, HISTORY, *FIGURES, LOCK, disk.MANIFEST}  # what a run holds
CONFIG_KEYS = {"aekit_version", "model", "train", "data", "scaling"}
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
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
