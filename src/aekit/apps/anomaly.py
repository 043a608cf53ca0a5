"""Anomaly scoring: how badly a trained model rebuilds each item (negative ELBO for a VAE), and a threshold.

The threshold comes from the input itself at a contamination rate (flag the top share of it), or from the
run's own training data at a percentile (flag what scores above most of what the model was trained on).

A fully convolutional model (backbone resnet) scores images of any size by where they differ: its anomaly map of
an image is how far the reconstruction error at each pixel stands out above the error around it (see local_excess),
and the image's score is the map's maximum (one defect is enough to make an image unusual, however small it is next
to the image). With ground-truth masks of the defects the maps get a pixel-level AUROC.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import plots
from ..data.images import IMAGE_SUFFIXES, MASKS, read_images
from ..errors import AekitError, check
from ..limits import INFERENCE_BATCH
from ..metrics import gaussian_window
from ..outputs import OutputPath, distinct
from ..progress import chunks
from ..run import Run, open_run
from . import check_finite, check_images_fit, model_inputs, sizes_of, tiles

MAP_SIGMA = 6.0  # pixels: the Gaussian that smooths the per-pixel error
SURROUND_SIGMA = 24.0  # pixels: the Gaussian over which the error around a spot is taken


def scores(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """Anomaly score of each item of x, (N,) float64: higher is more unusual. x: a tensor of items in [0, 1], or a
    numpy array, a dataset name, a path or a glob (see apps.model_inputs). A fully convolutional model's score of
    an image is the maximum of its anomaly map (see maps)."""
    run = open_run(run)
    x = model_inputs(run, x)
    if run.model.config.any_size:
        return torch.tensor([float(m.max()) for m in _maps(run, x)], dtype=torch.float64)
    device = run.model.device
    s = torch.cat([run.model.anomaly_scores(x[part].to(device)).cpu() for part in chunks(len(x), INFERENCE_BATCH)])
    check_finite(s, "the anomaly scores")
    return s


def maps(run: Run | str | os.PathLike, x) -> list[torch.Tensor]:
    """Anomaly maps of images x (a tensor (N, C, H, W) in [0, 1], or any images a use takes, see model_inputs) under a
    fully convolutional model: per image (H, W) float32, how far the reconstruction error stands out above the
    error around it (local_excess; negative where it is below); images of any size are rebuilt whole (tiles)."""
    run = open_run(run)
    check(run.model.config.any_size, "anomaly maps need a fully convolutional model (train with --backbone resnet)")
    return _maps(run, model_inputs(run, x))


def _maps(run: Run, x: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    model, out = run.model, []
    if isinstance(x, list):
        c = model.config.input_shape[0]

        def transient(size: tuple[int, int]) -> int:  # an image rebuilt, its error and the blurs of local_excess
            return tiles.tiling_bytes(model, size, c) + (8 * c + 32) * size[0] * size[1]

        check_images_fit(sizes_of(x), "anomaly maps", 5, transient)  # the maps, and masks where given
        for image in x:
            error = (tiles.map_image(model, image) - tiles.floats(image)).pow_(2).mean(0)
            out.append(local_excess(error[None, None])[0, 0])
    else:
        for part in chunks(len(x), INFERENCE_BATCH, "scoring"):
            batch = x[part]
            error = (model.reconstruct(batch.to(model.device)).cpu() - batch).pow_(2).mean(1, keepdim=True)
            out.extend(local_excess(error)[:, 0])
    check_finite(torch.cat([m.flatten() for m in out]), "the anomaly maps")
    return out


def local_excess(error: torch.Tensor) -> torch.Tensor:
    """How far the squared reconstruction error (N, 1, H, W) stands out above the error around it: the root of
    its mean over a Gaussian of MAP_SIGMA pixels less the root of its mean over one of SURROUND_SIGMA pixels.
    Content a model rebuilds poorly all over (texture, or things it never saw) raises both; a defect raises the
    first: on validation photos it ranks images and pixels better than the smoothed error alone
    (docs/benchmarks.md, "Anomaly maps")."""
    return blur(error, MAP_SIGMA).sqrt_() - blur(error, SURROUND_SIGMA).sqrt_()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x (N, 1, H, W) smoothed by a Gaussian of sigma pixels (reaching 3 sigma; edges repeated), one side at a time.
    A side shorter than the Gaussian's reach is summed over its pixels with their indices held at the edges rather
    than padded: a thin image (1 x 10^6 pixels, say) is never padded to the Gaussian's height."""
    kernel = gaussian_window(2 * math.ceil(3 * sigma) + 1, sigma).float()
    r = len(kernel) // 2
    for dim, shape in ((-1, (1, 1, 1, -1)), (-2, (1, 1, -1, 1))):
        n = x.shape[dim]
        if torch.compiler.is_exporting() or n >= 2 * r:  # padded along this side, convolved (exported: any size)
            pads = (r, r, 0, 0) if dim == -1 else (0, 0, r, r)
            x = F.conv2d(F.pad(x, pads, mode="replicate"), kernel.view(shape))
        else:  # each offset of the window gathered, its index held at the edges: the same sums
            out, index = torch.zeros_like(x), torch.arange(n)
            for k, g in enumerate(kernel.tolist()):
                out.add_(x.index_select(dim, (index + (k - r)).clamp_(0, n - 1)), alpha=g)
            x = out
    return x


def label_metrics(scores: np.ndarray, anomalous: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC (average precision) of scores against 0/1 truth, anomalies the positive class."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    check(0 < anomalous.sum() < len(anomalous), "AUROC needs both normal and anomalous items among the labels")
    return {
        "auroc": float(roc_auc_score(anomalous, scores)),
        "auprc": float(average_precision_score(anomalous, scores)),
        "anomalous_share": float(anomalous.mean()),
    }


def _anomalous(items, normal: list[str] | None) -> np.ndarray | None:
    """Which items are anomalous: those whose label is not among normal (numbers or class names); None
    without normal."""
    if normal is None:
        return None
    names = items.classes or []
    wanted = {names.index(v) if v in names else _int(v) for v in normal}
    return ~np.isin(items.y.numpy(), sorted(wanted))


def anomaly_file(
    run: Run | str | os.PathLike,
    source: str | None,
    *,
    split: str | None = None,
    contamination: float | None = None,
    percentile: float = 99.0,
    normal: list[str] | None = None,
    out: str | os.PathLike | None = None,
    figure: str | os.PathLike | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
    maps_out: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
) -> dict:
    """Score the items of source, flag those above a threshold, and report (and optionally write) the result.

    contamination: flag this share of the input (its top scores); otherwise the threshold is the percentile
    of the run's training data scores. normal: labels (numbers or class names) of the normal items; with
    labelled input this adds AUROC and AUPRC. out: a CSV of index, score, flagged, file and label. figure: a PNG
    with the score histogram and the most anomalous items (their anomaly maps over them, for a fully
    convolutional model). maps_out: an .npz of the anomaly maps, one array (H, W) per image, named by its file.
    masks: a folder of ground-truth masks (nonzero where an image is defective), each named as its image (its
    path in source, or just its file name; a _mask suffix allowed); images without one have no defect. An image
    folder's own masks/ subfolder is used when masks is not given. With masks: pixel AUROC and AUPRC."""
    run = open_run(run)
    _check_threshold(contamination, percentile)
    inputs = run.input_paths(source, data_dir) + ([Path(masks)] if masks is not None else [])
    table, picture, map_file = (
        OutputPath(path, (kind,), force, inputs) if path is not None else None
        for path, kind in ((out, ".csv"), (figure, ".png"), (maps_out, ".npz"))
    )
    distinct(table, picture, map_file)
    items, _ = run.read(source, split, data_dir)
    check(normal is None or items.y is not None, f"{source}: has no labels, so --normal cannot be used")
    any_size = run.model.config.any_size
    check(any_size or (maps_out is None and masks is None), "anomaly maps need a fully convolutional model (resnet)")
    x = model_inputs(run, items)
    truth, found = (_masks(items, x, source, masks), _maps(run, x)) if any_size else (None, None)
    s = np.array([float(m.max()) for m in found]) if any_size else scores(run, x).numpy()
    threshold, basis = threshold_of(run, s, contamination, percentile, data_dir)
    flagged, anomalous = s > threshold, _anomalous(items, normal)
    report = _summary(s, threshold, basis, flagged, any_size)
    report.update(label_metrics(s, anomalous) if anomalous is not None else {})
    report.update({f"pixel_{k}": v for k, v in pixel_metrics(found, truth).items()} if truth is not None else {})
    if items.item_names is not None:
        report["most_anomalous_files"] = [items.item_names[i] for i in report["most_anomalous"]]
    figure_png = _figure(run, s, threshold, x, found, anomalous, report, source) if picture is not None else None
    # Everything is computed and checked: write.
    if table is not None:
        table.write_bytes(_table(s, flagged, items))
        report["output"] = str(out)
    if picture is not None:
        picture.write_bytes(figure_png)
        report["figure"] = str(figure)
    if map_file is not None:
        names = items.item_names or [str(i) for i in range(len(found))]
        map_file.write(lambda f: np.savez(f, **{n: m.numpy() for n, m in zip(names, found, strict=True)}))
        report["maps"] = str(maps_out)
    return report


def _check_threshold(contamination: float | None, percentile: float) -> None:
    check(contamination is None or 0 < contamination < 1, f"contamination must be in (0, 1), got {contamination}")
    check(0 < percentile < 100, f"percentile must be in (0, 100), got {percentile}")


def _summary(s: np.ndarray, threshold: float, basis: str, flagged: np.ndarray, any_size: bool) -> dict:
    """The report's first fields: the scores' threshold and what it came from, what was flagged, the top ten."""
    return {
        "items": len(s),
        "threshold": threshold,
        "threshold_from": basis,
        "score": "max of the anomaly map" if any_size else "reconstruction error of the item",
        "flagged": int(flagged.sum()),
        "flagged_share": float(flagged.mean()),
        "most_anomalous": np.argsort(-s, kind="stable")[:10].tolist(),
    }


def _figure(run: Run, s: np.ndarray, threshold: float, x, found, anomalous, report: dict, source) -> bytes:
    """The PNG of the score histogram and the most anomalous items (their maps over them where there are maps)."""

    top = report["most_anomalous"][:8]
    shown = [tiles.floats(x[i]) for i in top]
    title = f"{run.model.name} anomaly scores: {source}"
    overlays = [found[i] for i in top] if found is not None else None
    return plots.anomalies(
        s, threshold, shown, s[top], title=title, anomalous=anomalous, top_index=top, overlays=overlays
    )


def pixel_metrics(found: list[torch.Tensor], truth: list[np.ndarray]) -> dict[str, float]:
    """AUROC and AUPRC of anomaly maps against ground-truth masks (True where defective), over all pixels."""
    return label_metrics(np.concatenate([m.numpy().ravel() for m in found]), np.concatenate([t.ravel() for t in truth]))


def _masks(items, x, source, masks) -> list[np.ndarray] | None:
    """The ground-truth mask (H, W) bool of every image x[i] (True where defective): from the folder masks, or the
    source folder's masks/ subfolder; None when there are none."""

    folder = Path(masks) if masks is not None else Path(str(source)) / MASKS
    if masks is None and not folder.is_dir():
        return None
    check(folder.is_dir(), f"{folder}: no such folder of masks")
    check(items.item_names is not None, f"{source}: masks go with images read from files")

    out = []
    for name, image in zip(items.item_names, x, strict=True):
        rel, shape = Path(name), tuple(image.shape[-2:])
        names = [f"{stem}{tail}{suffix}" for stem in (rel.with_suffix(""), rel.stem) for tail in ("", "_mask")
                 for suffix in IMAGE_SUFFIXES]  # fmt: skip
        found = next((folder / n for n in names if (folder / n).is_file()), None)
        mask = read_images([found], found)[0].max(axis=-1) > 0 if found else np.zeros(shape, dtype=bool)
        check(
            mask.shape == shape,
            f"{found}: the mask is {mask.shape[0]}x{mask.shape[1]}, its image {shape[0]}x{shape[1]}",
        )
        out.append(mask)
    return out


def threshold_of(run: Run, s: np.ndarray | None, contamination, percentile: float, data_dir) -> tuple[float, str]:
    """(the score above which items are flagged, where it comes from): the top contamination share of the scores s
    of the input, or without contamination the percentile of the scores of the run's training data."""
    if contamination is not None:
        return float(np.quantile(s, 1 - contamination)), f"top {contamination:g} of the input"
    train = run.load_data(data_dir=data_dir).train
    threshold = float(np.percentile(scores(run, train.floats()).numpy(), percentile))
    return threshold, f"{percentile:g}th percentile of the run's training data"


def _table(s: np.ndarray, flagged: np.ndarray, items) -> bytes:
    """The CSV: index, score, flagged, the item's file (a folder of images) and its label (by name when the data
    names its classes)."""
    columns = {"index": range(len(s)), "score": [f"{v:.6g}" for v in s.tolist()], "flagged": flagged.astype(int)}
    if items.item_names is not None:
        columns["file"] = items.item_names
    if items.y is not None:
        columns["label"] = [items.classes[v] if items.classes else str(v) for v in items.y.tolist()]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes a name holding a comma
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return text.getvalue().encode()


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise AekitError(f"normal label {text!r} is not a label of this data") from None
