"""Reconstruction and noise removal: run items through a trained model (a dae is made for it), optionally after
adding noise first, so that the result can be measured against the clean items."""

from __future__ import annotations

import math
import os

import torch

from .. import metrics, plots
from ..config import check_seed
from ..data.noise import IMAGE_NOISES, NOISES, corrupt
from ..errors import check
from ..outputs import OutputPath, distinct
from ..run import Run, open_run
from . import (
    IMAGE_KINDS,
    check_finite,
    check_images_fit,
    check_items_output,
    model_inputs,
    reconstruct_all,
    sizes_of,
    tiles,
    write_items,
)


def reconstruct(run: Run | str | os.PathLike, x, refine: int = 0) -> torch.Tensor | list[torch.Tensor]:
    """The model's reconstructions (N, ...) in [0, 1] of x: a tensor of items in [0, 1], or a numpy array, a
    dataset name or a path (see apps.model_inputs). In batches, without gradients.

    refine: fit each item's code to it with that many steps first (Autoencoder.refine_codes; ae, dae without
    skips and vae): closer reconstructions from codes of the same size, for the work of as many backward passes.
    A fully convolutional model (backbone resnet) rebuilds images of any size whole, in overlapping tiles of
    its input size (apps.tiles): images of one size come back as one tensor, of several sizes as a list; their
    tiles' codes are refined together, against the blended image (apps.tiles.refine_image)."""
    run = open_run(run)
    model = run.model
    fn = refined_fn(model, refine)
    x = model_inputs(run, x)
    if not isinstance(x, list):
        return reconstruct_all(model, x, fn)
    c = model.config.input_shape[0]
    check_images_fit(sizes_of(x), "rebuilding", 4 * c, lambda size: tiles.tiling_bytes(model, size, c, refine))
    out = [tiles.refine_image(model, image, refine) if refine else tiles.map_image(model, image) for image in x]
    check_finite(torch.cat([o.flatten() for o in out]), "the model's outputs")
    return torch.stack(out) if len({o.shape for o in out}) == 1 else out


def refined_fn(model: torch.nn.Module, refine: int):
    """What rebuilds a batch when codes are refined for refine steps (None: the model's own reconstruct)."""
    model.check_refine(refine)
    if not refine:
        return None
    return lambda batch: model.decode(model.refine_codes(batch, refine))


def denoise(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """Cleaned items (N, ...) in [0, 1]: what a model trained to remove noise (a dae) rebuilds from noisy x."""
    return reconstruct(run, x)


def denoise_file(
    run: Run | str | os.PathLike,
    source: str | None,
    out: str | os.PathLike,
    *,
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

    add_noise: corrupt the items first (any of NOISES; sigma, p, seeded),
    to measure the model against the clean items: the report gives PSNR of the noisy and the denoised
    items; noisy_out keeps the noisy copy. figure: a PNG of noisy over denoised (over clean) items.
    """
    run = open_run(run)
    _check_noise(add_noise, sigma, p, seed)
    inputs = run.input_paths(source, data_dir)
    output = OutputPath(out, IMAGE_KINDS, force, inputs)
    noisy_output = OutputPath(noisy_out, IMAGE_KINDS, force, inputs) if noisy_out is not None else None
    figure_output = OutputPath(figure, (".png",), force, inputs) if figure is not None else None
    distinct(output, noisy_output, figure_output)
    items, _ = run.read(source, split, data_dir)
    check(figure is None or items.is_image, f"{source}: the before/after figure is for images, not table rows")
    for kind in set(add_noise or []) & set(IMAGE_NOISES):
        check(items.is_image, f"{source}: {kind} is for images; tables have no rows and columns")
    check_items_output(output, items)
    clean = model_inputs(run, items)
    noisy, cleaned = _denoised(run, clean, add_noise, sigma, p, torch.Generator().manual_seed(seed))
    report = {"items": len(clean), "output": str(out)}
    if add_noise:
        clean = [tiles.floats(c) for c in clean] if isinstance(clean, list) else clean
        for name, values in (("noisy", noisy), ("denoised", cleaned)):
            report[f"{name}_psnr_db"] = metrics.image_psnr(clean, values)
            if items.is_image:
                report[f"{name}_ssim"] = metrics.mean_ssim(clean, values)
    # Everything is computed and checked: write.
    if figure_output is not None:
        rows = [noisy[:10], cleaned[:10]] + ([clean[:10]] if add_noise else [])
        names = ["noisy" if add_noise else "input", "denoised"] + (["clean"] if add_noise else [])
        figure_output.write_bytes(plots.rows_of_images(rows, names, title=f"{run.model.name}: denoising {source}"))
        report["figure"] = str(figure)
    if noisy_output is not None:
        write_items(noisy_output, noisy, items)
        report["noisy_output"] = str(noisy_out)
    write_items(output, cleaned, items)
    return report


def _check_noise(add_noise: list[str] | None, sigma: float, p: float, seed: int) -> None:
    """AekitError unless the noise to add is known and its settings are in range."""
    for kind in add_noise or []:
        check(kind in NOISES, f"unknown noise {kind!r}; choose from {', '.join(NOISES)}")
    ok = math.isfinite(sigma) and sigma >= 0 and 0 <= p <= 1
    check(ok, f"noise sigma must be a finite number >= 0 and p in [0, 1], got {sigma} and {p}")
    check_seed(seed)


def _denoised(run: Run, clean, add_noise: list[str] | None, sigma: float, p: float, generator: torch.Generator):
    """(noisy, cleaned): the model's inputs clean (a tensor of items, or whole images (C, H, W) cleaned in tiles)
    with the noise added (or as they are without add_noise), and what the model makes of them."""
    if not isinstance(clean, list):
        noisy = corrupt(clean, add_noise, sigma, p, generator) if add_noise else clean
        return noisy, reconstruct(run, noisy)
    # kept: the outputs (float32), their pixels to write; with noise the noisy and the clean images as floats,
    # and for the image being corrupted the noise's own float maps
    c, noise = run.model.config.input_shape[0], bool(add_noise)

    def transient(size: tuple[int, int]) -> int:
        return tiles.tiling_bytes(run.model, size, c) + 16 * c * size[0] * size[1] * noise

    check_images_fit(sizes_of(clean), "denoising", 5 * c + 8 * c * noise, transient)
    if add_noise:
        noisy = [corrupt(tiles.floats(image)[None], add_noise, sigma, p, generator)[0] for image in clean]
    else:
        noisy = clean
    cleaned = [tiles.map_image(run.model, x) for x in noisy]
    check_finite(torch.cat([image.flatten() for image in cleaned]), "the model's outputs")
    return noisy, cleaned
