"""Figures a person wants to look at, rendered as PNG bytes (the caller writes them where they belong).

Uses matplotlib's object API (Figure + Agg), so no global pyplot state and no display is needed.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch

from .metrics import squared_errors


def _import_matplotlib() -> None:
    """Import matplotlib. aekit draws through Figure and Agg only, so a backend in $MPLBACKEND that matplotlib does
    not know (a typo, a GUI that is not installed), which fails its import, is left out of it."""
    try:
        import matplotlib  # noqa: F401
    except ValueError:
        backend = os.environ.pop("MPLBACKEND", None)
        if backend is None:
            raise
        for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
            del sys.modules[name]  # the failed import's half-made modules: made again
        try:
            import matplotlib  # noqa: F401
        finally:
            os.environ["MPLBACKEND"] = backend


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _figure(width: float, height: float):
    _import_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


SHOWN_SIDE = 1024  # pixels: a larger image is shrunk (averaged) to fit before it is drawn; a figure shows no more


def _show_image(ax, item: torch.Tensor) -> None:
    """Draw one (C, H, W) image in [0, 1]."""
    h, w = item.shape[-2:]
    if max(h, w) > SHOWN_SIDE:  # no copy of a huge photo in matplotlib's float64
        size = (max(1, h * SHOWN_SIDE // max(h, w)), max(1, w * SHOWN_SIDE // max(h, w)))
        item = torch.nn.functional.adaptive_avg_pool2d(item.float()[None], size)[0]
    img = item.clamp(0, 1).cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def reconstructions(x: torch.Tensor, x_hat: torch.Tensor, title: str | None = None) -> bytes:
    """Originals over their reconstructions, each labelled with its squared error.

    x, x_hat: (N, C, H, W) images or (N, D) table rows in [0, 1]; rows are drawn as line plots.
    """
    n = len(x)
    errors = squared_errors(x, x_hat)
    if x.dim() == 4:
        fig = _figure(1.3 * n + 0.8, 3.0)
        axes = fig.subplots(2, n, squeeze=False)
        for i in range(n):
            _show_image(axes[0, i], x[i])
            _show_image(axes[1, i], x_hat[i])
            axes[1, i].set_xlabel(f"err {errors[i]:.2f}", fontsize=8)
        axes[0, 0].set_ylabel("original")
        axes[1, 0].set_ylabel("reconstruction")
    else:
        fig = _figure(8, 1.4 * n + 0.5)
        axes = fig.subplots(n, 1, squeeze=False, sharex=True)
        for i in range(n):
            ax = axes[i, 0]
            ax.plot(x[i].cpu().numpy(), "o-", ms=3, lw=1, label="original")
            ax.plot(x_hat[i].cpu().numpy(), "x--", ms=3, lw=1, label="reconstruction")
            ax.set_ylabel(f"row {i}\nerr {errors[i]:.3f}", fontsize=8)
        axes[0, 0].legend(fontsize=8, loc="upper right")
        axes[-1, 0].set_xlabel("feature")
    if title:
        fig.suptitle(title)
    return _png(fig)


def loss_curves(history: Sequence[dict[str, float]], title: str | None = None) -> bytes:
    """One panel per logged quantity (loss, mse, ...), the training and test (held-out) parts per epoch."""
    names = [k[len("train_") :] for k in history[0] if k.startswith("train_")] if history else ["loss"]
    fig = _figure(4.2 * len(names), 3.2)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    epochs = [r["epoch"] for r in history]
    for ax, name in zip(axes, names, strict=True):
        for split, style in (("train", "o-"), ("test", "s--")):
            key = f"{split}_{name}"
            if history and key in history[0]:
                ax.plot(epochs, [r[key] for r in history], style, ms=3, label=split)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if history and min(r[f"train_{name}"] for r in history) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _png(fig)


def image_grid(x: torch.Tensor, columns: int = 8, title: str | None = None) -> bytes:
    """Images (N, C, H, W) in [0, 1] as a grid, e.g. samples from a generative model."""
    rows = -(-len(x) // columns)
    fig = _figure(1.1 * columns, 1.1 * rows + (0.4 if title else 0))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(x):
            _show_image(ax, x[i])
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    return _png(fig)


def anomalies(
    scores,
    threshold: float,
    top,
    top_scores,
    title: str | None = None,
    anomalous=None,
    top_index=None,
    overlays=None,
) -> bytes:
    """The histogram of anomaly scores with the threshold (normal and anomalous items apart when anomalous, a
    0/1 array, is given), and the most anomalous items beside it (images: a tensor (N, C, H, W) or a list of
    (C, H, W) of any sizes), each with its index and score, under its anomaly map (H, W) when overlays are given."""
    images = len(top) > 0 and top[0].dim() == 3
    fig = _figure(11 if images else 6, 3.4)
    grid = fig.add_gridspec(2, 1 + (-(-len(top) // 2) if images else 0))
    ax = fig.add_subplot(grid[:, 0])
    bins = np.histogram_bin_edges(scores, bins=60)
    if anomalous is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8)
    else:
        ax.hist(scores[~anomalous], bins=bins, color="tab:blue", alpha=0.6, label="normal")
        ax.hist(scores[anomalous], bins=bins, color="tab:orange", alpha=0.6, label="anomalous")
    ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    if images:
        for i in range(len(top)):
            item_ax = fig.add_subplot(grid[i % 2, 1 + i // 2])
            _show_image(item_ax, top[i])
            if overlays is not None:
                heat = overlays[i].numpy()
                item_ax.imshow(heat, cmap="inferno", alpha=0.45, vmin=0, vmax=max(float(heat.max()), 1e-12))
            number = f"#{top_index[i]}  " if top_index is not None else ""
            item_ax.set_xlabel(f"{number}{top_scores[i]:.3g}", fontsize=8)
        heading = "right: the most anomalous (item number, score)" + (", anomaly map over each" if overlays else "")
        title = f"{title}; {heading}" if title else heading  # in the title: a free text would overlap it
    if title:
        fig.suptitle(title)
    return _png(fig)


def latent_map(z: torch.Tensor, labels, title: str | None = None, names=None) -> bytes:
    """Codes (N, latent_dim) on a plane (their first two principal components when latent_dim > 2),
    coloured by label when labels are given."""
    z = z.double()
    axis_names = ("z[0]", "z[1]")
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        z, axis_names = centred @ v[:2].T, ("PC 1", "PC 2")
    if z.shape[1] < 2:  # a 1-d code, or fewer items than two components
        z = torch.cat([z, torch.zeros(len(z), 2 - z.shape[1], dtype=z.dtype)], 1)
    fig = _figure(6.4, 5.4)
    ax = fig.subplots()
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10" if labels is not None else None, s=3, alpha=0.6)
    if labels is not None:
        values = sorted(set(int(v) for v in labels))
        handles = [
            ax.scatter([], [], color=points.cmap(points.norm(v)), s=12, label=names[v] if names else str(v))
            for v in values
        ]
        ax.legend(handles=handles, fontsize=7, markerscale=1.5, loc="best")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title:
        fig.suptitle(title)
    return _png(fig)


def rows_of_images(rows: Sequence[torch.Tensor], names: Sequence[str], title=None) -> bytes:
    """Rows of images (each (N, C, H, W) in [0, 1], the same N), one named row each: before/after figures."""
    n = len(rows[0])
    fig = _figure(1.2 * n + 0.8, 1.3 * len(rows) + 0.5)
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (row, name) in enumerate(zip(rows, names, strict=True)):
        for i in range(n):
            _show_image(axes[r, i], row[i])
        axes[r, 0].set_ylabel(name)
    if title:
        fig.suptitle(title)
    return _png(fig)


def code_histogram(
    z: torch.Tensor, per_unit: torch.Tensor, label: str, target: float | None = None, title: str | None = None
) -> bytes:
    """A sparse code at a glance: the histogram of all code values z (N, D) (log count), and a number per unit
    (per_unit (D,), named label: its mean activation, or the share of items it is on for), sorted, with the target
    the training aimed at as a dashed line."""
    fig = _figure(9, 3.2)
    left, right = fig.subplots(1, 2)
    left.hist(z.flatten().double().numpy(), bins=60, color="tab:blue")
    left.set_yscale("log")
    left.set_xlabel("code value")
    left.set_ylabel("values")
    values = per_unit.double().sort(descending=True).values.numpy()
    right.bar(np.arange(len(values)), values, width=1.0, color="tab:green")
    if target is not None:
        right.axhline(target, color="tab:red", ls="--", label=f"target {target:g}")
        right.legend(fontsize=8)
    right.set_xlabel("code unit (sorted)")
    right.set_ylabel(label)
    if title:
        fig.suptitle(title)
    return _png(fig)
