"""Frozen dataclass configs of plain JSON types, and their strict conversion from JSON.

The CLI reads the same JSON that a run folder's config.json holds: `{"model": {...}, "train": {...},
"data": {...}}`. Every section is checked here: unknown keys, wrong types and out-of-range values are
one-line AekitErrors naming the option.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import AekitError, check

T = TypeVar("T")
MAX_INT = 2**63  # integers in configs fit 64 bits (seeds, sizes and counts reach torch and numpy as int64)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build the dataclass cls from a JSON-like mapping, checking keys and types.

    where names the section in error messages (e.g. "model" or "train").
    """
    if not isinstance(data, Mapping):
        raise AekitError(f"{where}: expected an object of options, got {type(data).__name__}")
    data = new_names(cls, data, where)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise AekitError(f"{where}: unknown option {', '.join(map(brief, unknown))} (known: {', '.join(names)})")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise AekitError(f"{where}: missing {', '.join(map(repr, missing))}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def field_names(cls: type) -> set[str]:
    """The options a config dataclass declares, and the old names it still accepts (its RENAMED)."""
    return {f.name for f in dataclasses.fields(cls) if f.init} | set(getattr(cls, "RENAMED", {}))


def new_names(cls: type, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """data with the old option names a config class still accepts (its RENAMED: old -> new) given new ones."""
    renamed = getattr(cls, "RENAMED", {})
    for old, new in renamed.items():
        if old in data and new in data:
            raise AekitError(f"{where}: give {new} (or its old name {old}), not both")
    return {renamed.get(k, k): v for k, v in data.items()}


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a dict of JSON types (tuples become lists)."""
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):  # a nested value type (Scaling)
        return value.to_dict()
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if isinstance(hint, type) and hasattr(hint, "from_dict"):  # a nested value type (Scaling) checks itself
        try:
            return hint.from_dict(value)
        except AekitError as e:
            raise AekitError(f"{where}: {e}") from None
    if origin is tuple:
        check(isinstance(value, list | tuple), f"{where}: expected a list, got {brief(value)}")
        if Ellipsis not in args:  # tuple[int, int]: exactly so many values
            check(len(value) == len(args), f"{where}: expected a list of {len(args)} values, got {brief(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        check(isinstance(value, bool), f"{where}: expected true or false, got {brief(value)}")
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        check(ok, f"{where}: expected an integer, got {brief(value)}")
        check(abs(value) < MAX_INT, f"{where}: {brief(value)} is out of range (at most 2**63 - 1)")
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        check(ok, f"{where}: expected a finite number, got {brief(value)}")
        return float(value)
    elif hint is str:
        check(isinstance(value, str), f"{where}: expected a string, got {brief(value)}")
    else:  # pragma: no cover - a config field of an unsupported type is a programming error
        raise TypeError(f"unsupported config type {hint} for {where}")
    return value


def check_like(template: Any, value: Any, where: str) -> None:
    """AekitError unless value (parsed JSON) has the shape of template: the same keys, the same list lengths,
    and leaves of the same kind (true/false, a finite number, a string, null)."""
    stack = [(template, value, where)]
    while stack:
        t, v, at = stack.pop()
        if isinstance(t, dict):
            check(isinstance(v, dict) and set(v) == set(t), f"{at}: expected an object with keys {sorted(t)}"[:200])
            stack.extend((t[k], v[k], f"{at}.{k}") for k in t)
        elif isinstance(t, list | tuple):
            check(isinstance(v, list) and len(v) == len(t), f"{at}: expected a list of {len(t)} values")
            stack.extend((a, b, f"{at}[{i}]") for i, (a, b) in enumerate(zip(t, v, strict=True)))
        elif isinstance(t, bool) or t is None or isinstance(t, str):
            check(type(v) is type(t), f"{at}: expected {type(t).__name__}, got {brief(v)}")
        elif isinstance(t, int | float):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            check(ok, f"{at}: expected a finite number, got {brief(v)}")
        else:  # pragma: no cover - templates are JSON
            raise TypeError(f"unsupported template value {t!r} at {at}")


def brief(value: Any) -> str:
    """repr(value), cut to 60 characters (a hostile config's values can be megabytes long)."""
    big = isinstance(value, int) and value.bit_length() > 200
    text = f"an integer of {value.bit_length()} bits" if big else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_seed(seed: Any, name: str = "seed") -> int:
    """seed, checked to be a whole number in [0, 2**63) (what torch's and numpy's generators take)."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < MAX_INT
    check(ok, f"{name} must be a whole number in [0, 2**63), got {brief(seed)}")
    return seed


SCHEDULES = ("constant", "cosine")
MAX_MINUTES = 7 * 24 * 60  # train.minutes: a week
DEFAULT_STEPS = 3000  # optimizer steps of a run whose epochs are left to the data (at least 20 epochs)
INIT_LR_SHARE = 0.1  # a run started from trained weights (train.init): this share of the default learning rate


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based) of `total_steps`."""
    if schedule == "constant":
        return 1.0
    warmup = max(1, total_steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainConfig:
    """How to train: Adam, shuffled mini-batches, a checkpoint after every epoch.

    epochs: passes over the training data (default: 20, or more for small data, so that a run takes at
        least 3000 optimizer steps, at most 1000 epochs; with minutes, none: the most the minutes allow).
    minutes: train for this long instead of a number of epochs: stop at the end of the epoch during which the
        epochs' time (training and evaluation, summed over resumes) passes it, the learning-rate schedule fitted
        to the epochs that fit (re-estimated from their speed as the run goes; so a timed run is not
        reproducible bit for bit, an epoch-counted one is); at most a week (10080).
    batch_size: items per optimizer step (default: 256, or a tenth of the training items when that is less,
        at least 16; 16 for the resnet backbone: crops of photos learn from many small steps).
    lr: Adam learning rate (default 1e-3; 2e-3 for the resnet backbone; a tenth of that with init: steps that
        adapt trained weights rather than undo them).
    weight_decay: Adam's L2 penalty on the weights.
    schedule: learning rate over the run: constant, or cosine (linear warm-up over the first 5% of
        steps, then a cosine decay to 0) (default constant; cosine for the resnet backbone).
    grad_clip: clip the gradients' global norm to this before each step; None (default) does not clip.
    seed: seeds the initial weights, the data order and any noise.
    init: a run folder, or the name of a model that ships with aekit (aekit models), to start from: the new run
        takes its type, its options (those given here may change what leaves the weights' shapes as they are:
        a dae's noise, the sizes of a resnet's images) and its weights, so that a few items and minutes adapt it.
    device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    precision: "fp32", or "bf16" for bfloat16 autocast on CUDA (the loss stays float32; ignored elsewhere).
    compile: torch.compile the model on CUDA (ignored elsewhere).
    """

    epochs: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str | None = None
    grad_clip: float | None = None
    seed: int = 0
    init: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        check(self.precision in ("fp32", "bf16"), f"train.precision must be fp32 or bf16, got {self.precision!r}")
        check(self.epochs is None or self.epochs >= 1, f"train.epochs must be at least 1, got {self.epochs}")
        check(
            self.minutes is None or 0 < self.minutes <= MAX_MINUTES,  # False for NaN
            f"train.minutes must be a time in minutes above 0 and at most {MAX_MINUTES} (a week), got {self.minutes}",
        )
        check(
            self.batch_size is None or self.batch_size >= 1,
            f"train.batch_size must be at least 1, got {self.batch_size}",
        )

        check(self.lr is None or self.lr > 0, f"train.lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        check(
            self.schedule is None or self.schedule in SCHEDULES,
            f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        check(self.grad_clip is None or self.grad_clip > 0, f"train.grad_clip must be positive, got {self.grad_clip}")
        check(0 <= self.seed < MAX_INT, f"train.seed must be in [0, 2**63), got {self.seed}")
        check(self.init != "", "train.init must name a run folder or a shipped model")

    def for_data(self, n_train: int, preferred: Mapping[str, Any] | None = None) -> TrainConfig:
        """This config with the options left out filled in, for n_train training items and a model that
        prefers some (ModelConfig.train_defaults: batch_size, lr, schedule): a batch of 256, or a tenth of the
        items (at least 16); lr 1e-3 (INIT_LR_SHARE of it for a run started from trained weights), constant;
        epochs enough for DEFAULT_STEPS optimizer steps (20 at least, 1000 at most), none for a timed run. Small
        data thus still takes thousands of steps; MNIST keeps 256 and 20."""
        preferred = preferred or {}
        batch = self.batch_size or preferred.get("batch_size") or min(256, max(16, n_train // 10))
        epochs = self.epochs
        if epochs is None and self.minutes is None:
            epochs = max(20, min(1000, math.ceil(DEFAULT_STEPS / math.ceil(n_train / batch))))
        lr = self.lr or preferred.get("lr", 1e-3) * (INIT_LR_SHARE if self.init else 1.0)
        schedule = self.schedule or preferred.get("schedule", "constant")
        return dataclasses.replace(self, batch_size=batch, epochs=epochs, lr=lr, schedule=schedule)


@dataclass(frozen=True)
class DataConfig:
    """Which data and how to split it.

    source: a built-in dataset name ("mnist", "digits") or a path (image file, folder or glob pattern,
        .npy, .npz, .csv, IDX).
    test_split: fraction held out (the test part, watched during training and scored by evaluate); None
        means the dataset's own test split for built-ins and 0.1 for the user's data. 0 holds nothing out.
        Its old name val_split is still accepted.
    size: (height, width) to resize images from a folder to.
    crop: (height, width) of the crops to train on, for images of any sizes (a folder or one photo): each epoch
        draws as many random crops, each flipped left-right at random, as the images hold side by side; the
        held-out images are cut into fixed crops (a grid, centred). Images stay uint8 at their own sizes.
    color_jitter: with crop, for RGB: each training crop's channels shuffled, scaled by gains drawn from
        [1 - color_jitter, 1 + color_jitter] and shifted by one offset from [-color_jitter/2, color_jitter/2]
        (clipped to [0, 1]), so that photos of few colours (or gray ones) still teach every colour, and black
        and white areas; 0 (default) leaves colours as they are.
    label_column: CSV column holding labels (kept out of the features).
    split_seed: seed of the random hold-out split.
    classes: keep only the items with these labels (numbers, or an image folder's subfolder names), e.g.
        to train on normal items only for anomaly detection.
    """

    RENAMED: ClassVar[dict[str, str]] = {"val_split": "test_split"}  # old names that keep working

    source: str = "mnist"
    test_split: float | None = None
    size: tuple[int, ...] | None = None
    label_column: str | None = None
    split_seed: int = 0
    classes: tuple[str, ...] | None = None
    crop: tuple[int, ...] | None = None
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        check(self.source != "", "data.source must name a dataset or a path")
        if self.test_split is not None:
            check(0 <= self.test_split < 1, f"data.test_split must be in [0, 1), got {self.test_split}")
        for name in ("size", "crop"):
            value = getattr(self, name)
            ok = value is None or (len(value) == 2 and all(s >= 1 for s in value))
            check(ok, f"data.{name} must be two positive integers HEIGHT,WIDTH, got {list(value or ())}")
        check(0 <= self.split_seed < MAX_INT, f"data.split_seed must be in [0, 2**63), got {self.split_seed}")
        check(self.classes is None or len(self.classes) > 0, "data.classes must name at least one label")
        check(0 <= self.color_jitter <= 1, f"data.color_jitter must be in [0, 1], got {self.color_jitter}")
        check(not self.color_jitter or self.crop, "data.color_jitter applies to training on crops (data.crop)")
