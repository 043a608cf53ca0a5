"""A run as one page to read and share: `aekit report RUN -o report.html`, `aekit.report(run, path)`.

One self-contained HTML file: every figure embedded as a PNG data URI, the style inline, no script and no
request to any server; it reads on a phone's width. Sections: what was trained (type, data, the final losses),
the metrics beside the baselines (the run's stored evaluation, else measured now and not stored), the loss
curves, reconstructions of held-out items, the figures the model's capabilities name (FIGURES: samples from a
prior and the manifold of a 2-d code, a sparse code's histogram, a dae's noisy / denoised / clean items), the
anomaly scores of the held-out items with the most anomalous ones (their anomaly maps over them for a fully
convolutional model), the environment, and the run's config.json.
"""

from __future__ import annotations

import base64
import html
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, plots
from ._evaluate import evaluate, reconstruction_png
from .apps import encode_all, model_inputs, reconstruct_all, tiles
from .apps.anomaly import scores, threshold_of
from .apps.generate import manifold
from .disk import dumps
from .errors import check
from .outputs import PNG_FOLDER, OutputPath, distinct
from .run import Run, open_run

SHOWN = 8  # held-out items in the item figures
SCORED = 2000  # held-out items scored for the anomaly section, at most

STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 60rem;
       padding: 1rem; color: #1d1d1f; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: .9rem; }
.wide { overflow-x: auto; } table { border-collapse: collapse; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right; } th:first-child,
td:first-child { text-align: left; }
pre { background: #f6f6f6; padding: .8rem; overflow-x: auto; font-size: .8rem; }
"""


def report(
    run: Run | str | os.PathLike,
    out: str | os.PathLike,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
    figures: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write the run's report (see the module's docstring) to out, an .html file; returns what it holds. figures:
    also write each figure as a PNG into this folder, a new one (or one aekit wrote, with force), named after it
    (loss-curves.png, reconstructions.png, ...)."""
    run = open_run(run)
    output = OutputPath(out, (".html",), force, [run.path])
    folder = OutputPath(figures, (PNG_FOLDER,), force, [run.path]) if figures is not None else None
    distinct(output, folder)
    page = Page(run, data_dir)
    text = page.html().encode()
    result = {"output": str(output.path), "figures": len(page.pngs), "bytes": len(text)}
    if folder is not None:

        def fill(where: Path) -> None:
            for name, data in page.pngs:
                (where / f"{name}.png").write_bytes(data)

        folder.write_folder(fill)
        result["figure_files"] = [str(folder.path / f"{name}.png") for name, _ in page.pngs]
    output.write_bytes(text)
    return result


class Page:
    """The report's sections in order, each a heading and HTML."""

    def __init__(self, run: Run, data_dir) -> None:
        self.run, self.data_dir = run, data_dir
        self.model = run.model.eval()
        self.test, self.split = run.read(None, None, data_dir)
        self.pngs: list[tuple[str, bytes]] = []  # (name, PNG) of each figure, in order

    def html(self) -> str:

        c, metrics = self.run.config, self.run.metrics
        history = metrics.get("history", [])
        title = f"{self.model.name} on {c['data']['source']}"
        parts = [
            f"<h1>{_e(title)}</h1>",
            f"<p class=note>aekit {__version__} report of {_e(str(self.run.path))}, made "
            f"{time.strftime('%Y-%m-%d %H:%M')}</p>",
            self.summary(history),
            self.section("Metrics beside the baselines", self.metrics()),
        ]
        if history:
            curves = plots.loss_curves(history, title=title)
            caption = "Loss per epoch on the training items and on the held-out ones: they should fall together."
            parts.append(self.section("Training", self.figure(curves, "loss curves", caption)))
        rebuilt = reconstruction_png(self.run, SHOWN, None, self.data_dir)
        caption = "Held-out items (top) and what the model rebuilds from their codes (below)."
        parts.append(self.section("Reconstructions", self.figure(rebuilt, "reconstructions", caption)))
        for heading, make in figures_of(self.model):
            made = make(self)
            if made:
                parts.append(self.section(heading, made))
        if not self.model.config.conditional:  # its scores would need each item's label
            parts.append(self.section("Anomaly scores", self.anomalies()))
        parts.append(self.section("Environment", self.environment()))
        parts.append(self.section("Configuration (config.json)", f"<pre>{html.escape(dumps(c), quote=False)}</pre>"))
        head = '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        return (
            f"<!DOCTYPE html>\n<html lang=en><head>{head}<title>{_e(title)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n"
        )

    # ---------------------------------------------------------------- pieces

    def section(self, heading: str, body: str) -> str:
        return f"<section><h2>{_e(heading)}</h2>{body}</section>"

    def figure(self, png: bytes, alt: str, caption: str) -> str:
        self.pngs.append((re.sub(r"[^a-z0-9]+", "-", alt.lower()).strip("-"), png))
        data = base64.b64encode(png).decode()
        image = f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        return f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>"

    def summary(self, history: list[dict[str, float]]) -> str:
        c = self.run.config
        rows = {
            "type": self.model.name,
            "backbone": c["model"].get("backbone"),
            "input": " x ".join(map(str, c["model"]["input_shape"])),
            "code": f"{self.model.config.latent_dim} numbers",
            "data": c["data"]["source"],
            "epochs": len(history),
            "training time": f"{sum(r.get('time_s', 0.0) for r in history):.1f} s",
        }
        if history:
            rows.update({k: f"{v:.5g}" for k, v in history[-1].items() if k.startswith(("train_", "test_"))})
        return _table(["", ""], [[k, v] for k, v in rows.items()])

    def metrics(self) -> str:

        result = self.run.metrics.get("evaluation")
        note = "stored by aekit evaluate"
        if result is None:
            result, note = evaluate(self.run, data_dir=self.data_dir, save=False), "measured for this report"
        shown = {"model": result["model"], **result["baselines"]}
        columns = [k for k in ("mse", "psnr_db", "ssim", "sse_per_item") if k in result["model"]]
        rows = [[name, *(_number(values.get(k)) for k in columns)] for name, values in shown.items()]
        own = {k: v for k, v in result["model"].items() if k not in columns and isinstance(v, (int, float))}
        extra = _table(["the model's own", "value"], [[k, _number(v)] for k, v in own.items()]) if own else ""
        where = f"{result['items']} items of {_e(str(result['data']))} ({_e(result['split'])}), {note}"
        return _table(["", *columns], rows) + f"<p class=note>{where}</p>" + extra

    def anomalies(self) -> str:
        from .apps.anomaly import maps as anomaly_maps

        test = self.test.subset(torch.arange(min(len(self.test), SCORED)))
        x = model_inputs(self.run, test)
        maps = anomaly_maps(self.run, x) if self.model.config.any_size else None
        s = np.array([float(m.max()) for m in maps]) if maps is not None else scores(self.run, x).numpy()
        threshold, basis = threshold_of(self.run, s, None, 99.0, self.data_dir)
        top = np.argsort(-s, kind="stable")[:SHOWN].tolist()
        shown = [tiles.floats(x[i]) for i in top] if self.test.is_image else []
        overlays = [maps[i] for i in top] if maps is not None else None
        png = plots.anomalies(s, threshold, shown, s[top], top_index=top, overlays=overlays)
        what = "the maximum of its anomaly map" if maps is not None else "its reconstruction error"
        caption = (
            f"Each held-out item's anomaly score ({what}; {len(s)} items) and the threshold at the {basis}; "
            f"{int((s > threshold).sum())} held-out items lie above it. The most anomalous are beside the histogram."
        )
        return self.figure(png, "anomaly scores", caption)

    def environment(self) -> str:
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
        rows = [
            ["aekit", __version__],
            ["Python", sys.version.split()[0]],
            ["PyTorch", torch.__version__],
            ["NumPy", np.__version__],
            ["platform", platform.platform()],
            ["this report made on", device],
            ["training device setting", self.run.config["train"].get("device", "auto")],
        ]
        return _table(["", ""], rows)


# ---------------------------------------------------------------- each type's own figures


def _samples(page: Page) -> str:
    if not page.test.is_image:
        return ""

    generator = torch.Generator(page.model.device).manual_seed(0)
    x, columns = page.model.sample_grid(64, generator)
    x = x.cpu()
    what = f"{len(x)} items decoded from codes drawn from the model's prior"
    if page.model.config.conditional:
        what += f", the classes 0 to {columns - 1} from left to right"
    out = page.figure(plots.image_grid(x, columns), "samples", what + ".")
    if page.model.config.latent_dim == 2:
        grid = manifold(page.run, 15, page.data_dir)
        caption = "The 2-d code plane: items decoded on a 15 x 15 grid over the codes' 5% to 95% quantiles."
        out += page.figure(plots.image_grid(grid, columns=15), "manifold", caption)
    return out


def _sparsity(page: Page) -> str:

    x = page.test.floats()[:SCORED]
    z = encode_all(page.model, x)
    c = page.model.config
    if c.sparsity == "kl":  # sigmoid codes pulled to a mean activation of rho
        per_unit, label, target = z.mean(0), "mean activation", c.rho
    else:
        per_unit, label, target = page.model.active(z).double().mean(0), "share of items it is on for", None
    caption = (
        f"The codes of {len(x)} held-out items: nearly all values near zero (left), and for each unit its {label} "
        f"(right; mean over the units {float(per_unit.mean()):.3f})."
    )
    return page.figure(plots.code_histogram(z, per_unit, label, target), "sparse code histogram", caption)


def _denoising(page: Page) -> str:
    if not page.test.is_image:
        return ""

    x = model_inputs(page.run, page.test.subset(torch.arange(min(len(page.test), SHOWN))))
    if isinstance(x, list):  # whole photos: their first tiles' worth is enough to show the noise
        return ""
    noisy = page.model.corrupt(x, torch.Generator().manual_seed(0))
    clean = reconstruct_all(page.model, noisy)
    png = plots.rows_of_images([noisy, clean, x], ["noisy", "denoised", "clean"])
    noise = ", ".join(page.model.config.noise)
    caption = f"Held-out items with the model's own training noise ({noise}), what it makes of them, and the items."
    return page.figure(png, "denoising", caption)


FIGURES: dict[str, tuple[str, Callable[[Page], str]]] = {}  # name -> (heading, make(page) -> HTML, "" if none)


def register_figure(name: str, heading: str):
    """Decorator: make(page) -> HTML (page.figure(png, alt, caption); "" where it does not apply) is the report
    figure `name` under heading, shown for each model whose capabilities name it (Capabilities.figures)."""

    def add(make: Callable[[Page], str]) -> Callable[[Page], str]:
        if name in FIGURES:
            raise ValueError(f"report figure {name!r} is registered twice")
        FIGURES[name] = (heading, make)
        return make

    return add


register_figure("samples", "Samples from the prior")(_samples)
register_figure("sparse code", "The sparse code")(_sparsity)
register_figure("denoising", "Denoising")(_denoising)


def figures_of(model: torch.nn.Module) -> list[tuple[str, Callable[[Page], str]]]:
    """The report figures of a model: samples from the prior where it has one, then the figures its type names.
    AekitError for a name no figure is registered under."""
    capabilities = model.capabilities
    names = ["samples"] * capabilities.samples + [n for n in capabilities.figures if n != "samples"]
    unknown = [n for n in names if n not in FIGURES]
    check(not unknown, f"a {model.name} model names report figures nobody registered: {', '.join(unknown)}")
    return [FIGURES[n] for n in names]


# ---------------------------------------------------------------- helpers


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    return f"{value:.5g}" if isinstance(value, (int, float)) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
