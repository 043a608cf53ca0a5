"""Feature extraction: the codes of a trained model as a feature matrix for other models."""

from __future__ import annotations

import os

import torch

from .. import plots
from ..errors import check
from ..outputs import OutputPath
from ..run import Run, open_run
from . import check_finite, check_images_fit, encode_all, model_inputs, sizes_of, tiles, write_array


def features(run: Run | str | os.PathLike, x) -> torch.Tensor:
    """Codes (N, latent_dim) of items x (the posterior mean for a VAE). x: a tensor of items in [0, 1], or a
    numpy array, a dataset name, a path or a glob (see apps.model_inputs).

    A fully convolutional model gives images of its input size their code map flattened (latent_dim numbers),
    and images of other sizes the code map pooled: (N, latent_channels), each channel's mean over the whole
    image (encoded in overlapping tiles of the input size, see apps.tiles), comparable across sizes."""
    run = open_run(run)
    x = model_inputs(run, x)
    if not isinstance(x, list):
        return encode_all(run.model, x)
    model = run.model
    check_images_fit(
        sizes_of(x), "encoding", 0, lambda size: tiles.tiling_bytes(model, size, model.config.latent_channels)
    )
    return torch.stack([pooled_code(model, image) for image in x])


def pooled_code(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The mean of a fully convolutional model's code map over an image of any size: (latent_channels,)."""
    channels = model.config.latent_channels
    size = model.config.input_shape[1:]

    def code_map(batch: torch.Tensor) -> torch.Tensor:  # each code position spread over the pixels it stands for
        z = model.encode(batch).unflatten(1, (channels, -1, model.config.code_size(*size)[1]))
        return torch.nn.functional.interpolate(z, scale_factor=2**model.config.stages)[..., : size[0], : size[1]]

    pooled = tiles.map_image(model, image, code_map).mean((1, 2))
    check_finite(pooled, "the model's codes for this input")
    return pooled


def features_file(
    run: Run | str | os.PathLike,
    source: str | None,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the codes of source's items to out: .npy (codes), or .npz (x: codes, y: labels when known, trained:
    whether the run trained on each item, so that a model fitted on the codes can be tested on the others)."""
    run = open_run(run)
    output = OutputPath(out, (".npy", ".npz"), force, run.input_paths(source, data_dir))
    items, part, trained = run.read_marked(source, split, data_dir)
    z = features(run, model_inputs(run, items)).numpy()
    extra = {"y": items.y.numpy()} if items.y is not None else {}
    if output.kind == ".npz":
        write_array(output, z, **extra, trained=trained)
    else:
        write_array(output, z)
    report = {"output": str(out), "items": len(z), "split": part, "features": z.shape[1]}
    return {**report, "labels": bool(extra) and output.kind == ".npz", "trained_on": int(trained.sum())}


def latent_file(
    run: Run | str | os.PathLike,
    source: str | None,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    max_items: int = 5000,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Draw the codes of source's items on a plane (PCA above 2 dimensions), coloured by label, into the PNG at
    out; at most max_items of them (a seeded subset, in order)."""

    check(max_items >= 1, f"max_items must be at least 1, got {max_items}")
    run = open_run(run)
    output = OutputPath(out, (".png",), force, run.input_paths(source, data_dir))
    items, _ = run.read(source, split, data_dir)
    if len(items) > max_items:
        keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))[:max_items]
        items = items.subset(keep.sort().values)
    z = features(run, model_inputs(run, items))
    labels = items.y.numpy() if items.y is not None else None
    title = f"{run.model.name}: codes of {len(z)} items of {source}"
    output.write_bytes(plots.latent_map(z, labels, title=title, names=items.classes))
    return {"output": str(out), "items": len(z), "latent_dim": z.shape[1]}
