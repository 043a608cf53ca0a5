"""Generation: new items from a trained model, interpolations between two items, and the 2-d latent manifold.

A VAE samples its prior N(0, I). The other types have no prior, so aekit fits a Gaussian (mean and full
covariance) to the codes of the run's training data and samples that: a simple, honest stand-in that
shows what the decoder makes of plausible codes.
"""

from __future__ import annotations

import os

import torch

from ..errors import check
from ..run import Run
from . import decode_all, encode_all, open_run, read_input, refuse_existing, to_raw, write_array


def code_distribution(run: Run, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), a Cholesky factor (D, D)) of the prior codes are drawn from: N(0, I) for a VAE, else a
    Gaussian fitted to the codes of the run's training data."""
    d = run.model.config.latent_dim
    if hasattr(run.model, "sample"):
        return torch.zeros(d), torch.eye(d)
    z = encode_all(run.model, run.load_data(data_dir=data_dir).train.floats()).double()
    mean = z.mean(0)
    cov = torch.cov(z.T).reshape(d, d) + 1e-6 * torch.eye(d, dtype=torch.float64)
    return mean.float(), torch.linalg.cholesky(cov).float()


def generate(
    run: Run | str | os.PathLike,
    n: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """n new items (n, *input_shape) in [0, 1], decoded from codes drawn with spread scaled by temperature."""
    check(n >= 1, f"n must be at least 1, got {n}")
    check(temperature > 0, f"temperature must be positive, got {temperature}")
    run = open_run(run)
    mean, factor = code_distribution(run, data_dir)
    eps = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed))
    return decode_all(run.model, mean + temperature * eps @ factor.T)


def interpolate(run: Run | str | os.PathLike, a: torch.Tensor, b: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Items decoded along the straight line between the codes of items a and b: (steps, *input_shape)."""
    check(steps >= 2, f"steps must be at least 2, got {steps}")
    model = open_run(run).model
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
    n: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    between: tuple[int, int] | None = None,
    data: str | None = None,
    split: str = "test",
    steps: int = 10,
    grid: int | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Write new items to out (.png grid, or .npz/.npy in the data's units): n samples by default; with
    between=(I, J) the line between items I and J of data (default: the run's own data, its split part);
    with grid=G the 2-d latent manifold on a G x G lattice."""
    out = refuse_existing(out, force)
    check(out.suffix.lower() in (".png", ".npz", ".npy"), f"{out}: write a .png figure, or .npz/.npy arrays")
    run = open_run(run)
    columns = 8
    if between:
        items = read_input(run, data or run.data_config.source, split, data_dir)
        i, j = between
        check(0 <= i < len(items) and 0 <= j < len(items), f"interpolate: indices must be in 0..{len(items) - 1}")
        x = interpolate(run, items.batch(slice(i, i + 1))[0], items.batch(slice(j, j + 1))[0], steps)
        columns, what = steps, f"interpolation from item {i} to item {j}"
    elif grid is not None:
        x, columns, what = manifold(run, grid, data_dir), grid, "the 2-d latent manifold"
    else:
        x, what = generate(run, n, temperature, seed, data_dir), f"{n} samples, temperature {temperature}"
    if out.suffix.lower() == ".png":
        from .. import plots

        check(x.dim() == 4, "the model makes table rows, not images; write them as .npz")
        plots.image_grid(x, out, columns=min(columns, len(x)), title=f"{run.model.name}: {what}")
    else:
        write_array(out, to_raw(x, run.scaling), force)
    return {"output": str(out), "items": len(x), "what": what}
