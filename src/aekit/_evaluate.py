"""Evaluate a trained run on held-out data against simple baselines, and draw its reconstructions."""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch

from . import metrics, plots, quality
from .apps import check_images_fit, model_inputs, reconstruct_all, samplers, sizes_of, tiles
from .apps.denoise import reconstruct, refined_fn
from .apps.generate import generate
from .data.datasets import Dataset
from .errors import check
from .limits import INFERENCE_BATCH
from .lock import FolderLock
from .models.variational import MAX_NLL_K
from .outputs import OutputPath
from .run import Run, open_run

MAX_SAMPLES = 100_000  # evaluate --samples: ten times what published scores take


def _model_metrics(model, test: Dataset, batch_size: int) -> dict[str, float]:
    """Reconstruction metrics and the model's logs, averaged over test (with its labels for a conditional model)."""
    errors, similar, totals = [], [], {}
    for start in range(0, len(test), batch_size):
        x = test.batch(slice(start, start + batch_size)).to(model.device)
        out = model(x, labels=test.y[start : start + batch_size]) if model.config.conditional else model(x)
        errors.append(metrics.squared_errors(x, out.x_hat))
        if test.is_image:
            similar.append(metrics.ssim(x, out.x_hat))
        for key, value in (("loss", out.loss), *out.logs.items()):
            totals[key] = totals.get(key, 0.0) + float(value) * len(x)
    result = metrics.summarize(torch.cat(errors), math.prod(test.item_shape))
    if similar:
        result["ssim"] = float(torch.cat(similar).mean())
    result.update({k: v / len(test) for k, v in totals.items() if k not in result})
    return result


def _baseline(x: torch.Tensor, x_hat: torch.Tensor, image: bool) -> dict[str, float]:
    """A baseline's reconstruction metrics (ssim too for images)."""
    result = metrics.summarize(metrics.squared_errors(x, x_hat), math.prod(x.shape[1:]))
    return {**result, "ssim": float(metrics.ssim(x, x_hat).mean())} if image else result


@torch.no_grad()
def evaluate(
    run: Run | str | os.PathLike,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = INFERENCE_BATCH,
    save: bool = True,
    nll_k: int = 0,
    split: str | None = None,
    refine: int = 0,
    samples: int = 0,
    sampler: str | None = None,
) -> dict[str, Any]:
    """Reconstruction metrics of a run on held-out data, beside PCA and mean-item baselines.

    data: the data to evaluate on (default: the run's own); split: all, train or test (default: test without
    data, the part the run held out; all with data, whichever way its name or path is spelled). nll_k: importance
    samples for the negative log-likelihood of a VAE (0: skip; 1000 or more for a published-style figure).
    refine: also measure reconstructions from codes fitted to each item with that many steps (whole photos:
    their tiles' codes fitted together; see aekit.reconstruct), as model.refined. samples: also score that many
    generated items (seed 0, from sampler: see aekit.generate) against the evaluation items in the features of aekit's
    MNIST classifier (aekit.quality; 28x28 grayscale items only), as model.samples {frechet, precision, recall}.
    Returns {"data", "split", "items", "model": {mse, sse_per_item, psnr_db, loss, <the model's logs>,
    <the type's own metrics>}, "baselines": {"pca_<k>": {...}, "mean": {...}}} and, when save, stores it
    in metrics.json.
    """
    run = open_run(run)
    model = run.model.eval()
    check(not nll_k or model.capabilities.likelihood, f"--nll-k: a {model.name} model has no likelihood; only vae does")
    check(0 <= nll_k <= MAX_NLL_K, f"--nll-k must be between 0 and {MAX_NLL_K}, got {nll_k}")
    refined = refined_fn(model, refine)
    check(0 <= samples <= MAX_SAMPLES, f"--samples must be between 0 and {MAX_SAMPLES:,}, got {samples}")
    check(samples != 1, "--samples: the scores need at least 2 generated items")
    test, split = run.read(data, split, data_dir)
    if samples:
        quality.check_images(test.batch(slice(0, 1)))
    train = run.load_data(data_dir=data_dir).train  # the baselines are fitted on the run's training data
    images = model_inputs(run, test)
    if isinstance(images, list):  # whole images of other sizes than the model's
        result_model, baselines = _whole_images(model, images, train.floats(), refine)
        return _result(run, data, split, len(test), result_model, baselines, save)
    with torch.random.fork_rng():  # a VAE samples its code: the same figures every call, the caller's RNG untouched
        torch.manual_seed(0)
        result_model = _model_metrics(model, test, batch_size)
        x_train, x_test = train.floats(), test.floats()
        labels = {"labels": test.y} if model.config.conditional else {}
        result_model.update(model.extra_metrics(x_test.to(model.device), nll_k=nll_k, **labels))
    if refined is not None:
        rebuilt = reconstruct_all(model, x_test, refined)
        result_model["refined"] = {"steps": refine, **_baseline(x_test, rebuilt, test.is_image)}

    k = model.config.latent_dim
    pca = metrics.pca_reconstruct(x_train, x_test, k)
    mean = x_train.double().mean(0, keepdim=True).expand(x_test.shape)
    baselines = {f"pca_{k}": _baseline(x_test, pca, test.is_image), "mean": _baseline(x_test, mean, test.is_image)}
    if samples:
        result_model["samples"] = _sample_quality(run, samples, sampler, x_test, data_dir)
    return _result(run, data, split, len(test), result_model, baselines, save)


def _sample_quality(run: Run, n: int, sampler: str | None, real: torch.Tensor, data_dir) -> dict[str, Any]:
    """n items generated by the run (seed 0) scored against real items (N, 1, 28, 28) (quality.sample_quality)."""
    chosen = samplers.choose(run.model, sampler)
    fake = generate(run, n, sampler=chosen, data_dir=data_dir)
    return {"sampler": chosen, **quality.sample_quality(fake, real, quality.classifier(data_dir))}


def _result(run: Run, data, split: str, items: int, model: dict, baselines: dict, save: bool) -> dict[str, Any]:
    """evaluate's report, stored in the run's metrics.json when save."""
    result = {
        "data": data or run.data_config.source,
        "split": split,
        "items": items,
        "model": model,
        "baselines": baselines,
    }
    if save and not run.shipped:  # a shipped model's folder is never written
        with FolderLock(run.path):  # not while a training writes the same metrics.json
            run.update_metrics(evaluation=result)
    return result


def _whole_images(model, images: list[torch.Tensor], x_train: torch.Tensor, refine: int) -> tuple[dict, dict]:
    """(the model's metrics, the baselines') on whole images, each rebuilt in tiles of the model's input size
    (apps.tiles): PSNR over all pixels, mean SSIM. The baselines work on the same tiles: PCA with as many
    components as the code has numbers, fitted on the run's training items, and the mean training item.
    refine: the model with codes refined for that many steps is measured too (when > 0)."""
    k, c = model.config.latent_dim, model.config.input_shape[0]

    def transient(size: tuple[int, int]) -> int:  # rebuilding one image, then its PSNR and SSIM in float64
        return tiles.tiling_bytes(model, size, c, refine) + 24 * c * size[0] * size[1]

    check_images_fit(sizes_of(images), "evaluating", 12 * c, transient)  # the clean images and two methods' outputs
    pca, mean = metrics.pca_fitted(x_train, k), x_train.double().mean(0)
    on_tiles = {"model": None, f"pca_{k}": lambda t: pca(t).to(t), "mean": lambda t: mean.expand(t.shape).to(t)}
    methods = {name: partial(tiles.map_image, model, fn=fn) for name, fn in on_tiles.items()}
    methods.update({"refined": partial(tiles.refine_image, model, steps=refine)} if refine else {})
    clean = [tiles.floats(image) for image in images]
    out = {}
    for name, method in methods.items():
        rebuilt = [method(image) for image in images]
        check(all(bool(torch.isfinite(r).all()) for r in rebuilt), "the model's reconstructions hold NaN or infinity")
        out[name] = {"psnr_db": metrics.image_psnr(clean, rebuilt), "ssim": metrics.mean_ssim(clean, rebuilt)}
        out[name]["mse"] = 10 ** (-out[name]["psnr_db"] / 10)
    result = {**out.pop("model"), "whole_images": "in tiles of the model's input size"}
    if refine:
        result["refined"] = {"steps": refine, **out.pop("refined")}
    return result, out


@torch.no_grad()
def reconstruction_figure(
    run: Run | str | os.PathLike,
    out: str | os.PathLike,
    n: int = 8,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    split: str | None = None,
) -> Path:
    """Draw the first n (1 to 32) items over their reconstructions into the PNG at out (an existing file there
    is replaced only with force). data and split as for evaluate: by default the run's held-out items."""
    check(1 <= n <= 32, f"n must be between 1 and 32, got {n}")
    run = open_run(run)
    output = OutputPath(out, (".png",), force, run.input_paths(data, data_dir))
    return output.write_bytes(reconstruction_png(run, n, data, data_dir, split))


@torch.no_grad()
def reconstruction_png(
    run: Run | str | os.PathLike,
    n: int = 8,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
) -> bytes:
    """The figure of reconstruction_figure, as PNG bytes."""
    run = open_run(run)
    test, split = run.read(data, split, data_dir)
    title = f"{run.model.name}: {test.name} {split.split(' ')[0]} items, original (top) vs reconstruction"

    images = model_inputs(run, test.subset(torch.arange(min(n, len(test)))))
    if isinstance(images, list):  # whole images of any size: their floats and their reconstructions, drawn
        c = run.model.config.input_shape[0]
        check_images_fit(sizes_of(images), "rebuilding", 8 * c, lambda size: tiles.tiling_bytes(run.model, size, c))
        x, x_hat = [tiles.floats(image) for image in images], reconstruct(run, images)
        check(all(bool(torch.isfinite(r).all()) for r in x_hat), "the model's reconstructions hold NaN or infinity")
        return plots.rows_of_images([x, x_hat], ["original", "rebuilt"], title=title)
    if run.model.config.conditional:
        return plots.reconstructions(images, run.model.reconstruct(images, labels=test.y[: len(images)]), title=title)
    return plots.reconstructions(images, reconstruct(run, images), title=title)
