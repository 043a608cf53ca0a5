"""How items' raw values become the model's [0, 1] and back (Scaling), chosen from the training part."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AekitError, check


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Scaling:
    """Maps raw values into [0, 1]: x = (raw - lo) / (hi - lo), per feature (lists) or global (floats).

    Fitted on the training split and stored in the run folder, so that new data is prepared exactly
    as the training data was. lo <= hi, both finite and hi - lo finite; a constant feature has lo == hi
    (it maps to 0); a global scaling needs lo < hi.
    """

    lo: float | list[float]
    hi: float | list[float]

    def __post_init__(self) -> None:
        scalars = _number(self.lo) and _number(self.hi)
        lists = isinstance(self.lo, list) and isinstance(self.hi, list) and len(self.lo) == len(self.hi) > 0
        check(
            scalars or (lists and all(map(_number, self.lo + self.hi))),
            "scaling: lo and hi must be two finite numbers or two equally long lists of them",
        )
        lo, hi = np.asarray(self.lo, np.float64), np.asarray(self.hi, np.float64)
        with np.errstate(over="ignore"):
            span = hi - lo
        bad = np.flatnonzero(~((span >= 0) & np.isfinite(span)) | ((span == 0) & scalars))
        if bad.size:
            j = int(bad[0])
            where = f" of feature {j}" if lists else ""
            raise AekitError(
                f"scaling: the range{where} from {lo.flat[j]:g} to {hi.flat[j]:g} is "
                + ("empty or reversed" if span.flat[j] <= 0 else "wider than a float can hold")
            )

    @classmethod
    def fit(cls, raw: np.ndarray, per_feature: bool) -> Scaling:
        """Min-max scaling from raw (N, ...) values: per column when per_feature, else global."""
        if per_feature:
            return cls(raw.min(axis=0).tolist(), raw.max(axis=0).tolist())
        return cls(float(raw.min()), float(raw.max()))

    def lo_span(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.asarray(self.lo, np.float64), np.asarray(self.hi, np.float64)
        return lo, np.where(hi > lo, hi - lo, 1.0)  # a constant feature maps to 0, never to a division by 0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw values (N, ...) -> float32 in [0, 1] (values beyond the fitted range fall outside it), a chunk
        of items at a time (no float64 copy of the whole array)."""
        lo, span = self.lo_span()
        out = np.empty(raw.shape, np.float32)
        step = max(1, (16 << 20) // max(1, math.prod(raw.shape[1:])))
        with np.errstate(over="ignore"):
            for i in range(0, len(raw), step):
                out[i : i + step] = (raw[i : i + step] - lo) / span
        check(
            bool(np.isfinite(out).all()),
            "values far outside the range the scaling was fitted on (lo, hi) overflow a float32",
        )
        return out

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Values in the model's [0, 1] space (N, ...) back to raw units, float64 (inf where they overflow)."""
        lo, span = self.lo_span()
        with np.errstate(over="ignore"):
            return x.astype(np.float64) * span + lo

    def to_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        ok = isinstance(d, dict) and set(d) == {"lo", "hi"}
        check(ok, f"scaling: expected {{'lo': ..., 'hi': ...}}, got {d!r}"[:200])
        lo, hi = d["lo"], d["hi"]
        if _number(lo) and _number(hi):
            return cls(float(lo), float(hi))
        if isinstance(lo, list) and isinstance(hi, list) and all(map(_number, lo + hi)):
            return cls([float(v) for v in lo], [float(v) for v in hi])
        return cls(lo, hi)  # __post_init__ says what is wrong

    @property
    def features(self) -> int | None:
        """How many features a per-feature scaling is for (None when global)."""
        return len(self.lo) if isinstance(self.lo, list) else None


UINT8 = Scaling(0.0, 255.0)


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images x (..., C, H, W), uint8 or floats, with channels 3 (a grey image's one channel copied to red, green
    and blue) or 1 (an RGB image's luminance, ITU-R BT.601 as Pillow's convert("L") gives it); x itself where
    they already have that many."""
    have = x.shape[-3]
    if have == channels:
        return x
    check({have, channels} == {1, 3}, f"images of {have} channels cannot become {channels}; only grey and RGB do")
    if channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    r, g, b = x.unbind(-3)
    if x.dtype == torch.uint8:  # Pillow's integer weights (out of 2**16) and rounding
        grey = ((r.int() * 19595 + g.int() * 38470 + b.int() * 7471 + 32768) >> 16).to(torch.uint8)
    else:
        grey = (r * 0.299 + g * 0.587 + b * 0.114).to(x.dtype)
    return grey.unsqueeze(-3)


def check_raw_finite(raw: np.ndarray, name: str, release) -> None:
    """AekitError naming the first item holding NaN or infinity, read a chunk at a time."""
    if raw.dtype.kind != "f":
        return
    start = 0
    for chunk in _chunks(raw, None, release):
        bad = ~np.isfinite(chunk)
        if bad.any():
            first = start + int(np.argwhere(bad.reshape(len(chunk), -1).any(axis=1))[0, 0])
            raise AekitError(f"{name}: NaN or infinite values (first in item {first}); clean or drop them first")
        start += len(chunk)


def choose_scaling(raw: np.ndarray, train_rows: np.ndarray, given: Scaling | None, name: str, release) -> Scaling:
    """Pixels speak for themselves (uint8 is /255; floats already in [0, 1] stay); tables and other images take
    the given scaling (a trained run's) or one fitted on the training part: per column for tables, one range
    for all pixels of images."""
    is_image = raw.ndim == 4
    if is_image and raw.dtype == np.uint8:
        return UINT8
    if is_image and _in_unit_range(raw, release):
        return Scaling(0.0, 1.0)
    if given is not None:
        return given
    axis = 0 if not is_image else None
    lows, highs = zip(*((c.min(axis), c.max(axis)) for c in _chunks(raw, train_rows, release)), strict=True)
    low, high = np.min(lows, axis=0).astype(np.float64), np.max(highs, axis=0).astype(np.float64)
    try:
        return Scaling(low.tolist(), high.tolist()) if not is_image else Scaling(float(low), float(high))
    except AekitError as e:
        raise AekitError(f"{name}: cannot be scaled to [0, 1] ({e}); rescale or drop those values") from None


def _chunks(raw: np.ndarray, rows: np.ndarray | None, release, chunk_bytes: int = 64 << 20):
    """raw's items (or those at rows) in consecutive chunks of about chunk_bytes; release() after each."""
    n = len(raw) if rows is None else len(rows)
    step = max(1, chunk_bytes // max(1, raw[0].nbytes))
    for i in range(0, n, step):
        yield np.asarray(raw[i : i + step] if rows is None else raw[rows[i : i + step]])
        release()


def _in_unit_range(raw: np.ndarray, release) -> bool:
    return all(c.min() >= 0 and c.max() <= 1 for c in _chunks(raw, None, release))
