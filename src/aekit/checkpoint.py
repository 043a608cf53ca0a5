"""checkpoint.safetensors: what a killed run needs to continue exactly, and its strict reader.

Tensors
  model.NAME              the weights
  optim.I.KEY             Adam's state of parameter I: exp_avg, exp_avg_sq, step
  rng.order               the data-order generator's state
  rng.torch, rng.cuda     PyTorch's CPU RNG state (and the GPU's, on one)
Metadata (strings, each a JSON value)
  epoch                   finished epochs
  param_groups            Adam's parameter groups (only their learning rates are read back)
  optim_scalars           any non-tensor Adam state, {"I": {"KEY": number}} (empty with PyTorch 2)
  scheduler               the learning-rate schedule's state
  history                 one record of metrics per finished epoch

A checkpoint is read only after every part has been checked against the model and optimizer it is for:
names, shapes, dtypes, finiteness, and that the epoch, the history and the optimizer's and schedule's
step counts agree. Anything else is a one-line AekitError naming the file; nothing is half-loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from . import disk
from .config import brief, check_like
from .errors import AekitError, check
from .runfiles import check_state, read_tensors, save_tensors

_OLD_KEYS = re.compile(r"^val_")  # runs made before the held-out part was called test logged it as val_*
META_KEYS = ("epoch", "param_groups", "optim_scalars", "scheduler", "history")
ADAM_STATE = ("exp_avg", "exp_avg_sq", "step")


def save(path: Path, state: dict[str, Any]) -> None:
    """Write a trainer's state (Trainer.state_dict) as checkpoint.safetensors at path (atomically)."""
    tensors = {f"model.{k}": v for k, v in state["model"].items()}
    optim = state["optimizer"]
    scalars: dict[str, dict[str, Any]] = {}
    for pid, values in optim["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    tensors.update({f"rng.{name}": value for name, value in state["rng"].items()})
    meta = {
        "epoch": str(state["epoch"]),
        "param_groups": json.dumps(optim["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "scheduler": json.dumps(state["scheduler"]),
        "history": json.dumps(state["history"]),
    }
    save_tensors(path, tensors, meta)


def read(path: Path, trainer) -> dict[str, Any]:
    """The state in the checkpoint at path (as Trainer.state_dict gives it), every part checked against the
    trainer's model, optimizer and schedule first (Trainer.load_state_dict restores it)."""
    tensors, meta = read_tensors(path)
    where = str(path)
    missing = [k for k in META_KEYS if k not in meta]
    check(not missing, f"{where}: incomplete checkpoint metadata (no {', '.join(missing)})")
    parsed = {k: disk.parse_json(meta[k], f"{where}: {k}") for k in META_KEYS}

    epoch, history = parsed["epoch"], parsed["history"]
    check(type(epoch) is int and epoch >= 0, f"{where}: epoch must be a whole number >= 0, got {brief(epoch)}")
    _check_history(history, epoch, where)
    history = [{_OLD_KEYS.sub("test_", k): v for k, v in record.items()} for record in history]
    steps = epoch * trainer.steps_per_epoch

    groups = _learning_rates(parsed["param_groups"], trainer.optimizer, where)
    scheduler = parsed["scheduler"]
    check_like(trainer.scheduler.state_dict(), scheduler, f"{where}: scheduler")
    check(scheduler["base_lrs"] == trainer.scheduler.base_lrs, f"{where}: the schedule's base learning rates differ")
    check(
        scheduler["last_epoch"] == steps,
        f"{where}: the schedule is at step {scheduler['last_epoch']}, but {epoch} epochs make {steps} steps",
    )

    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "rng": {}}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        check(prefix in parts and rest, f"{where}: unexpected tensor {brief(key)}")
        parts[prefix][rest] = value
    state = _adam_state(parts["optim"], parsed["optim_scalars"], trainer, steps, where)
    rng = _rng_states(parts["rng"], trainer, where)
    check_state(trainer.model, parts["model"], path)
    optimizer = {"state": state, "param_groups": groups}
    return {"model": parts["model"], "optimizer": optimizer, "scheduler": scheduler, "rng": rng, "epoch": epoch,
            "history": history}  # fmt: skip


def _check_history(history: Any, epoch: int, where: str) -> None:
    check(
        isinstance(history, list) and len(history) == epoch,
        f"{where}: history must list one record per finished epoch ({epoch})",
    )
    for i, record in enumerate(history):
        ok = isinstance(record, dict) and record.get("epoch") == i + 1
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in record.values())
        check(ok, f"{where}: history record {i + 1} is not a record of numbers for epoch {i + 1}")


def _learning_rates(groups: Any, optimizer: torch.optim.Optimizer, where: str) -> list[dict[str, Any]]:
    """The optimizer's own groups with the checkpoint's learning rates (the rest comes from the config)."""
    own = optimizer.state_dict()["param_groups"]
    check_like(own, groups, f"{where}: param_groups")
    result = []
    for mine, theirs in zip(own, groups, strict=True):
        check(theirs["params"] == mine["params"], f"{where}: param_groups name other parameters than the model's")
        check(theirs["lr"] >= 0, f"{where}: param_groups hold a negative learning rate")
        result.append({**mine, "lr": theirs["lr"]})
    return result


def _adam_state(
    tensors: dict[str, torch.Tensor], scalars: Any, trainer, steps: int, where: str
) -> dict[int, dict[str, Any]]:
    params = list(trainer.model.parameters())
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        match = re.fullmatch(r"(\d{1,9})\.(\w+)", key)
        ok = match is not None and int(match[1]) < len(params) and match[2] in ADAM_STATE
        check(ok, f"{where}: unexpected optimizer tensor {brief('optim.' + key)}")
        pid, name = int(match[1]), match[2]
        param = params[pid]
        if name == "step":
            ok = value.shape == () and value.is_floating_point()
            ok = ok and bool(value == torch.tensor(steps, dtype=value.dtype))  # counted in the tensor's precision
            check(ok, f"{where}: optimizer step count of parameter {pid} does not match {steps} steps")
        else:
            ok = value.shape == param.shape and value.dtype == param.dtype
            shape, wanted = list(value.shape), list(param.shape)
            check(ok, f"{where}: optimizer state optim.{key} has shape {shape}, the model's parameter {wanted}")
            ok = bool(torch.isfinite(value).all()) and (name != "exp_avg_sq" or bool((value >= 0).all()))
            check(ok, f"{where}: optimizer state optim.{key} holds NaN, infinite or impossible values")
        state.setdefault(pid, {})[name] = value.to(trainer.device)
    check(isinstance(scalars, dict), f"{where}: optim_scalars must be an object")
    for pid_text, values in scalars.items():
        ok = pid_text.isdigit() and int(pid_text) < len(params) and isinstance(values, dict)
        ok = ok and all(k in ADAM_STATE and type(v) in (int, float) for k, v in values.items())
        check(ok, f"{where}: optim_scalars hold something other than Adam's numbers")
        state.setdefault(int(pid_text), {}).update(values)
    expected = set(range(len(params))) if steps else set()
    complete = set(state) == expected and all(set(s) == set(ADAM_STATE) for s in state.values())
    check(complete, f"{where}: the optimizer state does not cover the model's {len(params)} parameters")
    return state


def _rng_states(tensors: dict[str, torch.Tensor], trainer, where: str) -> dict[str, torch.Tensor]:
    own = {"order": trainer.order.get_state(), "torch": torch.get_rng_state()}
    if trainer.device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(trainer.device)
    extra = sorted(set(tensors) - set(own) - {"cuda"})
    check(not extra, f"{where}: unexpected RNG state {brief('rng.' + extra[0]) if extra else ''}")
    for name, mine in own.items():
        if name == "cuda" and name not in tensors:
            continue  # a checkpoint made on a CPU, resumed on a GPU
        value = tensors.get(name)
        ok = value is not None and value.dtype == mine.dtype and value.shape == mine.shape
        check(ok, f"{where}: the RNG state rng.{name} is missing or not {list(mine.shape)} bytes")
    try:  # the generator's own checks on the bytes, before anything is restored
        torch.Generator().set_state(tensors["order"])
        torch.Generator().set_state(tensors["torch"])
    except (RuntimeError, ValueError) as e:
        raise AekitError(f"{where}: an RNG state is not a valid generator state ({str(e)[:80]})") from None
    return {k: v for k, v in tensors.items() if k in own}
