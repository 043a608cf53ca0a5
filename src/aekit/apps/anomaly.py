"""Anomaly scoring: how badly a trained model rebuilds each item (negative ELBO for a VAE), and a threshold.

The threshold comes from the input itself at a contamination rate (flag the top share of it), or from the
run's own training data at a percentile (flag what scores above most of what the model was trained on).
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import torch

from ..disk import Output, distinct
from ..errors import AekitError, check
from ..limits import INFERENCE_BATCH
from ..progress import chunks
from ..run import Run, open_run
from . import as_items, check_finite


def scores(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """Anomaly score of each item of x, (N,) float64: higher is more unusual. x: a tensor of items in [0, 1], or a
    numpy array, a dataset name or a path (see as_items)."""
    run = open_run(run)
    x, device = as_items(run, x), run.model.device
    s = torch.cat([run.model.anomaly_scores(x[part].to(device)).cpu() for part in chunks(len(x), INFERENCE_BATCH)])
    check_finite(s, "the anomaly scores")
    return s


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
    source: str,
    split: str | None = None,
    contamination: float | None = None,
    percentile: float = 99.0,
    normal: list[str] | None = None,
    out: str | os.PathLike | None = None,
    figure: str | os.PathLike | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Score the items of source, flag those above a threshold, and report (and optionally write) the result.

    contamination: flag this share of the input (its top scores); otherwise the threshold is the percentile
    of the run's training-data scores. normal: labels (numbers or class names) of the normal items; with
    labelled input this adds AUROC and AUPRC. out: a CSV of index, score, flagged, file and label. figure: a PNG
    with the score histogram and the most anomalous items.
    """
    run = open_run(run)
    if contamination is not None:
        check(0 < contamination < 1, f"contamination must be in (0, 1), got {contamination}")
    check(0 < percentile < 100, f"percentile must be in (0, 100), got {percentile}")
    table = Output(out, (".csv",), force) if out is not None else None
    picture = Output(figure, (".png",), force) if figure is not None else None
    distinct(table, picture)
    items, _ = run.read(source, split, data_dir)
    check(normal is None or items.y is not None, f"{source}: has no labels, so --normal cannot be used")
    s = scores(run, items.floats()).numpy()
    threshold, basis = _threshold(run, s, contamination, percentile, data_dir)
    flagged = s > threshold
    report = {
        "items": len(s),
        "threshold": threshold,
        "threshold_from": basis,
        "flagged": int(flagged.sum()),
        "flagged_share": float(flagged.mean()),
        "most_anomalous": np.argsort(-s, kind="stable")[:10].tolist(),
    }
    anomalous = _anomalous(items, normal)
    if anomalous is not None:
        report.update(label_metrics(s, anomalous))
    if items.item_names is not None:
        report["most_anomalous_files"] = [items.item_names[i] for i in report["most_anomalous"]]
    if picture is not None:
        from .. import plots

        top = np.asarray(report["most_anomalous"][:8])
        shown = items.batch(torch.from_numpy(top))
        title = f"{run.model.name} anomaly scores: {source}"
        figure_png = plots.anomalies(s, threshold, shown, s[top], title=title, anomalous=anomalous, top_index=top)
    if table is not None:
        table.write_bytes(_table(s, flagged, items))
        report["output"] = str(out)
    if picture is not None:
        picture.write_bytes(figure_png)
        report["figure"] = str(figure)
    return report


def _threshold(run: Run, s: np.ndarray, contamination, percentile: float, data_dir) -> tuple[float, str]:
    """(the score above which items are flagged, where it comes from)."""
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
