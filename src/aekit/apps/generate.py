"""Generation: new items from a trained model, interpolations between two items, and the 2-d latent manifold.

A type with a prior (Capabilities.samples: the vae) draws from it (model.sample). Any type can draw from a density
fitted to the codes of the run's training data instead: one Gaussian (the default where there is no prior) or a
mixture of Gaussians (apps.samplers). The 2-d manifold spans a standard normal prior, or that one Gaussian.
"""

from __future__ import annotations

import math
import os
from functools import partial

import torch

from .. import plots
from ..config import check_seed
from ..errors import check
from ..limits import INFERENCE_BATCH, allowed_bytes, check_load_size
from ..models.layers import activation_bytes
from ..outputs import OutputPath
from ..progress import chunks
from ..run import Run, open_run
from . import check_output_items, decode_all, encode_all, samplers, to_raw, write_array

PNG_GRID_MAX = 1024  # images in one .png grid; more go to .npz or .npy


def code_distribution(run: Run, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), a Cholesky factor (D, D)) of the Gaussian the 2-d manifold spans: N(0, I) for a type with a
    prior, else the Gaussian fitted to the codes of the run's training data."""
    d = run.model.config.latent_dim
    if run.model.capabilities.samples:
        return torch.zeros(d), torch.eye(d)
    codes, _ = samplers.training_codes(run, data_dir)
    gaussian = samplers.fit_gaussian(codes, str(run.path))
    return gaussian.means[0], gaussian.factors[0]


def generate(
    run: Run | str | os.PathLike,
    n: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    sampler: str | None = None,
    components: int = samplers.GMM_COMPONENTS,
    label: int | None = None,
) -> torch.Tensor:
    """n new items (n, *input_shape) in [0, 1], decoded from codes drawn with spread scaled by temperature.

    sampler: where the codes come from (apps.samplers): "prior" (the type's own, its default where it has one),
    "gaussian" (one Gaussian fitted to the codes of the run's training data, the default of the others) or "gmm"
    (a mixture of components Gaussians fitted to them). The codes are drawn from one generator seeded with seed
    and decoded INFERENCE_BATCH at a time, so n is bounded only by the memory its output takes. size=(H, W): images
    of that size from a fully convolutional VAE, whose prior is the same Gaussian at every position of its code
    map (a map for H x W is drawn and decoded whole). label: a conditional model's class of every item (default:
    the classes in turn, 0, 1, 2, ...).
    """
    check(math.isfinite(temperature) and temperature > 0, f"temperature must be a positive number, got {temperature}")
    check_seed(seed)
    run = open_run(run)
    if size is not None:
        check(sampler in (None, "prior"), "--size draws from a resnet vae's prior: leave --sampler out")
        return _generate_at(run.model, n, temperature, seed, size)
    sampler = samplers.choose(run.model, sampler)
    check_output_items(n, run.model, "generate")
    labels = run.model.labels_for(n, label)
    if sampler == "prior":
        return _sampled(run.model, n, temperature, seed, labels)
    fit = partial(samplers.fit_gmm, components=components) if sampler == "gmm" else samplers.fit_gaussian
    generator = torch.Generator().manual_seed(seed)
    z = samplers.draw(samplers.training_codes(run, data_dir), fit, labels, n, temperature, generator, str(run.path))
    check(bool(torch.isfinite(z).all()), f"temperature {temperature:g} draws codes beyond float32's range")
    return decode_all(run.model, z, labels)


@torch.no_grad()
def _sampled(
    model: torch.nn.Module, n: int, temperature: float, seed: int, labels: torch.Tensor | None
) -> torch.Tensor:
    """n items (n, *input_shape) on the CPU from model.sample (of the classes labels (n,) for a conditional model),
    INFERENCE_BATCH at a time from one generator on the model's device seeded with seed, checked finite."""
    generator = torch.Generator(model.device).manual_seed(seed)
    out = None
    for part in chunks(n, INFERENCE_BATCH, "generating"):
        given = {} if labels is None else {"labels": labels[part]}
        x = model.sample(part.stop - part.start, temperature, generator, **given).cpu()
        message = f"temperature {temperature:g}: the samples hold NaN or infinite values (codes beyond float32's range)"
        check(bool(torch.isfinite(x).all()), message)
        out = torch.empty(n, *x.shape[1:]) if out is None else out
        out[part] = x
    return out


@torch.no_grad()
def _generate_at(model: torch.nn.Module, n: int, temperature: float, seed: int, size: tuple[int, int]) -> torch.Tensor:
    """n images of size (H, W) from a fully convolutional VAE's prior, one at a time."""
    check(model.config.any_size and model.capabilities.samples, "--size draws from a resnet vae's spatial prior")
    check(len(size) == 2 and min(size) >= 1, f"size must be two positive integers HEIGHT,WIDTH, got {list(size)}")
    height, width = size
    channels = model.config.input_shape[0]
    check(n >= 1, f"generate: ask for at least 1 item, got {n}")
    # the images (float32, their copy as one tensor and in the data's units), and the decoder's activations over one
    per_image = 12 * channels * height * width
    need = n * per_image + activation_bytes(model.config, 1, height, width)
    fits = f"; at most about {allowed_bytes() * height * width // need:,} pixels an image fit"
    check_load_size(need, "generate", f"making {n} images of {height}x{width}", fits if n == 1 else "")
    generator = torch.Generator().manual_seed(seed)
    code = (model.config.latent_channels, *model.config.code_size(height, width))
    out = []
    for _ in chunks(n, 1, "generating"):
        z = torch.randn(1, *code, generator=generator) * temperature
        out.append(torch.sigmoid(model.decoder(z.to(model.device), size=(height, width))).cpu())
    x = torch.cat(out)
    check(bool(torch.isfinite(x).all()), "the model's outputs hold NaN or infinite values")
    return x


def interpolate(run: Run | str | os.PathLike, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Items decoded along the straight line between the codes of items a and b: (steps, *input_shape)."""
    check(steps >= 2, f"steps must be at least 2, got {steps}")
    model = open_run(run).model
    check_output_items(steps, model, "interpolate")
    z = encode_all(model, torch.stack([a, b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return decode_all(model, (1 - t) * z[0] + t * z[1])


def manifold(run: Run | str | os.PathLike, grid: int = 15, data_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """For a 2-d code: items decoded on a grid x grid lattice over the code distribution (its Gaussian's
    5% to 95% quantiles along each axis, in equal steps of probability), rows from high z[1] at the top to
    low at the bottom. Returns (grid * grid, *input_shape)."""
    run = open_run(run)
    d = run.model.config.latent_dim
    check(d == 2, f"the latent manifold needs a model with latent_dim 2, this one has {d}")
    check(2 <= grid <= 40, f"grid must be between 2 and 40, got {grid}")
    mean, factor = code_distribution(run, data_dir)
    normal = torch.distributions.Normal(0.0, 1.0)
    q = normal.icdf(torch.linspace(0.05, 0.95, grid))  # as in Kingma & Welling's manifold figures
    z1, z0 = torch.meshgrid(q.flip(0), q, indexing="ij")
    eps = torch.stack([z0.flatten(), z1.flatten()], 1)
    return decode_all(run.model, mean + eps @ factor.T)


def generate_file(
    run: Run | str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    between: tuple[int, int] | None = None,
    data: str | None = None,
    split: str | None = None,
    steps: int = 10,
    grid: int | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    sampler: str | None = None,
    components: int = samplers.GMM_COMPONENTS,
    label: int | None = None,
) -> dict:
    """Write new items to out (.png grid, or .npz/.npy in the data's units): n samples by default (sampler,
    components, label: see generate); with between=(I, J) the line between items I and J of data (default: the
    run's own data, its split part); with grid=G the 2-d latent manifold on a G x G lattice."""
    run = open_run(run)
    sampler = "prior" if size is not None else samplers.choose(run.model, sampler)
    output = OutputPath(out, (".png", ".npz", ".npy"), force, run.input_paths(data if between else None, data_dir))
    count = steps if between else grid * grid if grid is not None else n
    figure = output.kind == ".png"
    check(not figure or count <= PNG_GRID_MAX, f"{out}: a .png grid shows at most {PNG_GRID_MAX} images; write .npz")
    check(not figure or len(run.model.config.input_shape) == 3, "the model makes table rows, not images; use .npz")
    columns = 8
    if between:
        check(steps >= 2, f"steps must be at least 2, got {steps}")
        check_output_items(steps, run.model, "interpolate")
        items, _ = run.read(data, split, data_dir)
        i, j = between
        check(0 <= i < len(items) and 0 <= j < len(items), f"interpolate: indices must be in 0..{len(items) - 1}")
        x = interpolate(run, items.batch(slice(i, i + 1))[0], items.batch(slice(j, j + 1))[0], steps)
        columns, what = steps, f"interpolation from item {i} to item {j}"
    elif grid is not None:
        x, columns, what = manifold(run, grid, data_dir), grid, "the 2-d latent manifold"
    else:
        x = generate(run, n, temperature, seed, data_dir, size, sampler, components, label)
        what = f"{n} samples ({sampler}), temperature {temperature}"
        if run.model.config.conditional:
            columns = columns if label is not None else run.model.config.classes
            what += f", label {label}" if label is not None else ", a class a column"
    if figure:
        output.write_bytes(plots.image_grid(x, columns=min(columns, len(x)), title=f"{run.model.name}: {what}"))
    else:
        write_array(output, to_raw(x, run.scaling))
    return {"output": str(out), "items": len(x), "what": what}
