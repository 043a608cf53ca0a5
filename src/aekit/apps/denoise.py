"""Reconstruction and noise removal: run items through a trained model (a dae is made for it), optionally after
adding noise first, so that the result can be measured against the clean items."""

from __future__ import annotations

import math
import os

import torch

from .. import metrics
from ..config import check_seed
from ..data.noise import NOISES, corrupt
from ..disk import Output, distinct
from ..errors import check
from ..run import Run, open_run
from . import ARRAY_KINDS, as_items, decode_all, encode_all, to_raw, write_array


def reconstruct(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """The model's reconstructions (N, ...) in [0, 1] of x: a tensor of items in [0, 1], or a numpy array, a
    dataset name or a path (see as_items). In batches, without gradients."""
    run = open_run(run)
    return decode_all(run.model, encode_all(run.model, as_items(run, x)))


def denoise(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """Cleaned items (N, ...) in [0, 1]: what a model trained to remove noise (a dae) rebuilds from noisy x."""
    return reconstruct(run, x)


def denoise_file(
    run: Run | str | os.PathLike,
    source: str,
    out: str | os.PathLike,
    split: str | None = None,
    add_noise: list[str] | None = None,
    sigma: float = 0.5,
    p: float = 0.25,
    seed: int = 0,
    noisy_out: str | os.PathLike | None = None,
    figure: str | os.PathLike | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Denoise the items of source into out (.npz, .npy or a folder of PNGs, in the data's own units).

    add_noise: corrupt the items first (any of shift, gaussian, salt_pepper, masking; sigma, p, seeded),
    to measure the model against the clean items: the report gives PSNR of the noisy and the denoised
    items; noisy_out keeps the noisy copy. figure: a PNG of noisy over denoised (over clean) items.
    """
    run = open_run(run)
    for kind in add_noise or []:
        check(kind in NOISES, f"unknown noise {kind!r}; choose from {', '.join(NOISES)}")
    ok = math.isfinite(sigma) and sigma >= 0 and 0 <= p <= 1
    check(ok, f"noise sigma must be a finite number >= 0 and p in [0, 1], got {sigma} and {p}")
    check_seed(seed)
    output = Output(out, ARRAY_KINDS, force)
    noisy_output = Output(noisy_out, ARRAY_KINDS, force) if noisy_out is not None else None
    figure_output = Output(figure, (".png",), force) if figure is not None else None
    distinct(output, noisy_output, figure_output)
    items, _ = run.read(source, split, data_dir)
    check(figure is None or items.is_image, f"{source}: the before/after figure is for images, not table rows")
    check("shift" not in (add_noise or []) or items.is_image, f"{source}: shift moves images, not table rows")
    clean = items.floats()
    noisy = corrupt(clean, add_noise, sigma, p, torch.Generator().manual_seed(seed)) if add_noise else clean
    cleaned = denoise(run, noisy)
    report = {"items": len(clean), "output": str(out)}
    if add_noise:
        n_features = math.prod(items.item_shape)
        report["noisy_psnr_db"] = metrics.summarize(metrics.squared_errors(clean, noisy), n_features)["psnr_db"]
        report["denoised_psnr_db"] = metrics.summarize(metrics.squared_errors(clean, cleaned), n_features)["psnr_db"]
        if items.is_image:
            report["noisy_ssim"] = float(metrics.ssim(clean, noisy).mean())
            report["denoised_ssim"] = float(metrics.ssim(clean, cleaned).mean())
    # Everything is computed and checked: write.
    if figure_output is not None:
        from .. import plots

        rows = [noisy[:10], cleaned[:10]] + ([clean[:10]] if add_noise else [])
        names = ["noisy" if add_noise else "input", "denoised"] + (["clean"] if add_noise else [])
        figure_output.write_bytes(plots.rows_of_images(rows, names, title=f"{run.model.name}: denoising {source}"))
        report["figure"] = str(figure)
    if noisy_output is not None:
        write_array(noisy_output, to_raw(noisy, items.scaling))
        report["noisy_output"] = str(noisy_out)
    write_array(output, to_raw(cleaned, items.scaling))
    return report
