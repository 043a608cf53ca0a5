"""A trained model outside Python: `aekit export RUN -o model.onnx [--part PART]`, `aekit.export(run, path)`.

The ONNX graph takes the data as the user has it (pixel values 0-255, a table's own units: the run's scaling is
applied inside) in float32 batches of any size, and for a fully convolutional model (backbone resnet) images of
any height and width (one pixel and up), whole (aekit's own uses go in tiles of the training size:
GroupNorm then sees other statistics, so whole-image outputs differ a little from theirs). The parts (PARTS):
  reconstruct  x -> reconstruction, in x's units
  encoder      x -> code (N, latent_dim); a resnet's code map (N, latent_channels, h, w), h = ceil(H / 2**stages)
  decoder      code -> reconstruction, in the data's units (a resnet's map of any size: an image h, w times 2**s)
  scorer       x -> score (N,) (the anomaly score of `aekit anomaly`: squared error summed over an item; a
               resnet's: the maximum of its anomaly map), anomalous (N,) bool (score > threshold: given, or the
               percentile of the run's training data's scores), and for a resnet map (N, H, W)
The export is checked before it is written: onnxruntime (where installed) runs the graph on a batch of the
run's shape (and for a resnet another size) and its outputs must equal PyTorch's within 1e-5 of the data's
range. The file's metadata names the part, the run, the scaling and the threshold.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import warnings
from typing import Any

import numpy as np
import torch

from . import __version__
from .apps.anomaly import local_excess, threshold_of
from .disk import dumps
from .errors import AekitError, check
from .metrics import squared_errors
from .outputs import OutputPath
from .run import Run, cpu_run

PARTS = {
    "reconstruct": "x -> reconstruction",
    "encoder": "x -> code",
    "decoder": "code -> reconstruction",
    "scorer": "x -> anomaly score, anomalous (score > threshold), a resnet's anomaly map",
}
TOLERANCE = 1e-5  # of the data's range: how far onnxruntime's outputs may be from PyTorch's


class Graph(torch.nn.Module):
    """One part of a run's model as a function of raw inputs (see the module's docstring)."""

    def __init__(self, run: Run, part: str, threshold: float | None = None) -> None:
        super().__init__()
        check(part in PARTS, f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        model = self.model = run.model.eval()
        self.part, self.any_size = part, model.config.any_size
        self.skips = not model.capabilities.decodes_codes  # a dae with U-Net skips: decoder(code, skips)
        check(
            part not in ("encoder", "decoder") or model.capabilities.decodes_codes,
            f"--part {part}: this model's decoder also takes the encoder's U-Net skips; export reconstruct instead",
        )
        check(
            part != "scorer" or not model.capabilities.random_scores,
            "--part scorer: a vae's score (the negative ELBO) draws random codes; export reconstruct and score its "
            "error, or encoder for the posterior mean",
        )
        lo, span = run.scaling.lo_span()
        shape = (-1,) + (1,) * (len(model.config.input_shape) - 1) if np.ndim(lo) else ()
        self.register_buffer("lo", torch.tensor(lo, dtype=torch.float32).reshape(shape))
        self.register_buffer("span", torch.tensor(span, dtype=torch.float32).reshape(shape))
        self.threshold = threshold

    def forward(self, x: torch.Tensor):
        if self.part == "decoder":
            return self.unscale(torch.sigmoid(self.model.decode_logits(x)))
        x = (x - self.lo) / self.span
        if self.part == "encoder":
            return self.code(x)
        x_hat = self.rebuild(x)
        if self.part == "reconstruct":
            return self.unscale(x_hat)
        if not self.any_size:
            score = squared_errors(x, x_hat)
            return score, score > self.threshold

        found = local_excess((x_hat - x).pow(2).mean(1, keepdim=True))[:, 0]
        score = found.flatten(1).amax(1)
        return score, score > self.threshold, found

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The code of x (scaled); a resnet's map, of an image of any size."""
        model = self.model
        return model.code_of(model.encoder(x, flat=False)) if self.any_size else model.encode(x)

    def rebuild(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x (scaled) in [0, 1] through its code (and a resnet dae's U-Net skips)."""
        model = self.model
        if self.skips:
            skips = []
            logits = model.decoder(model.encoder(x, skips, flat=False), skips)
        else:
            logits = model.decode_logits(self.code(x))
        x_hat = torch.sigmoid(logits)
        return x_hat[..., : x.shape[-2], : x.shape[-1]] if self.any_size else x_hat

    def unscale(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.span + self.lo

    # ---------------------------------------------------------------- what it takes and gives

    def names(self) -> tuple[list[str], list[str]]:
        outputs = {"reconstruct": ["reconstruction"], "encoder": ["code"], "decoder": ["reconstruction"]}
        scorer = ["score", "anomalous"] + (["map"] if self.any_size else [])
        return ["code" if self.part == "decoder" else "x"], outputs.get(self.part, scorer)

    def example(
        self, batch: int = 2, grow: int = 0, seed: int = 0, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """A batch the graph takes: values across the data's range (codes of such for the decoder); grow adds as
        many pixels to a resnet's height (and half as many again to its width), or size gives its (H, W)."""
        generator = torch.Generator().manual_seed(seed)
        c, *shape = self.model.config.input_shape
        if self.any_size:
            size = list(size) if size else [shape[0] + grow, shape[1] + grow + grow // 2]
        else:
            size = shape
        x = torch.rand(batch, c, *size, generator=generator) if size else torch.rand(batch, c, generator=generator)
        if self.part != "decoder":
            return x * self.span + self.lo
        with torch.no_grad():
            return self.code(x)

    def least_side(self) -> int:
        """A resnet graph's smallest image side (its code's side, for the decoder): 1, or where the model keeps a
        fixed number of code values (a top-k sparse code) as many pixels as a square code holding them needs."""
        model = self.model
        positions = -(-model.least_code_values // model.config.latent_channels)
        side = math.isqrt(positions - 1) + 1  # of a square code map of at least that many positions
        return side if self.part == "decoder" or side == 1 else (side - 1) * 2**model.config.stages + 1

    def dynamic_shapes(self) -> tuple[dict[int, Any]]:
        dims = {0: torch.export.Dim("batch", min=1)}
        if self.any_size:
            least = self.least_side()
            dims.update({2: torch.export.Dim("height", min=least), 3: torch.export.Dim("width", min=least)})
        return (dims,)


def export(
    run: Run | str | os.PathLike,
    output: str | os.PathLike,
    part: str = "reconstruct",
    threshold: float | None = None,
    percentile: float = 99.0,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write one part of a run's model as an ONNX file at output (see the module's docstring), checked against
    PyTorch with onnxruntime where it is installed; returns a report (the file, its inputs and outputs, the
    largest difference found). threshold: the scorer's (default: the percentile of the run's training data's
    anomaly scores)."""
    onnx = _onnx()
    run = cpu_run(run)  # traced and checked on the CPU: the file does not depend on where the run was opened
    out = OutputPath(output, (".onnx",), force, [run.path])
    check(part in PARTS, f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    check(0 < percentile < 100, f"percentile must be in (0, 100), got {percentile}")
    check(threshold is None or math.isfinite(threshold), f"the threshold must be a finite number, got {threshold}")
    basis = None
    if part == "scorer" and threshold is None:
        threshold, basis = threshold_of(run, None, None, percentile, data_dir)
    graph = Graph(run, part, threshold)
    inputs, outputs = graph.names()
    try:
        with _quiet():
            traced = torch.export.export(graph, (graph.example(),), dynamic_shapes=graph.dynamic_shapes())
            program = torch.onnx.export(traced, input_names=inputs, output_names=outputs, verbose=False)
    except Exception as e:  # the exporter's errors are long; the first line says what failed
        raise AekitError(f"export failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}") from None
    proto = program.model_proto
    meta = {"aekit_version": __version__, "part": part, "run": str(run.path), "scaling": dumps(run.config["scaling"])}
    if threshold is not None:
        meta.update(threshold=repr(float(threshold)), threshold_from=basis or "given")
    onnx.helper.set_model_props(proto, meta)
    data = proto.SerializeToString()
    difference = _check(graph, data)
    out.write_bytes(data)
    report = {"output": str(out.path), "part": part, "inputs": inputs, "outputs": outputs, "bytes": len(data)}
    if threshold is not None:
        report.update(threshold=float(threshold), threshold_from=basis or "given")
    report["max_difference"] = difference
    return report


def _onnx():
    try:
        import onnx  # noqa: F401  (the exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise AekitError("aekit export needs the onnx extra: pip install 'aekit[onnx]'") from None
    return onnx


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines, log lines and warnings kept off the terminal."""
    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _check(graph: Graph, data: bytes) -> float | None:
    """The largest difference between onnxruntime's outputs and PyTorch's, as a share of the data's range, on a
    batch of the run's shape and (resnet) one of another size and one of 1x1 pixels; AekitError beyond TOLERANCE;
    None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    span = float(graph.span.max())
    examples = [graph.example(batch=3, seed=1)]
    if graph.any_size:  # another size, and the smallest image
        examples.append(graph.example(batch=3, grow=2**graph.model.config.stages + 3, seed=1))
        if graph.part != "decoder":
            examples.append(graph.example(batch=3, seed=1, size=(graph.least_side(),) * 2))
    for x in examples:
        with torch.no_grad():
            want = graph(x)
        got = session.run(None, {graph.names()[0][0]: x.numpy()})
        for name, w, g in zip(graph.names()[1], want if isinstance(want, tuple) else (want,), got, strict=True):
            scale = span if name == "reconstruction" else 1.0
            w = w.numpy()
            check(g.shape == w.shape, f"export check: {name} has shape {list(g.shape)}, PyTorch gives {list(w.shape)}")
            diff = float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max()) / scale if g.size else 0.0
            worst = max(worst, diff)
    check(worst <= TOLERANCE, f"export check: onnxruntime differs from PyTorch by {worst:.3g} (more than 1e-5)")
    return worst
