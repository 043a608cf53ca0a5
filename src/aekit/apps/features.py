"""Feature extraction: the codes of a trained model as a feature matrix for other models."""

from __future__ import annotations

import os

import torch

from ..errors import check
from ..run import Run
from . import encode_all, open_run, read_input, refuse_existing, write_array


def features(run: Run | str | os.PathLike, x: torch.Tensor) -> torch.Tensor:
    """Codes (N, latent_dim) of items x (N, ...) in [0, 1] (the posterior mean for a VAE)."""
    return encode_all(open_run(run).model, x)


def features_file(
    run: Run | str | os.PathLike,
    source: str,
    out: str | os.PathLike,
    split: str = "all",
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """Write the codes of source's items to out: .npy (codes), or .npz (x: codes, y: labels when known)."""
    run = open_run(run)
    out = refuse_existing(out, force)
    check(out.suffix.lower() in (".npy", ".npz"), f"{out}: features are written as .npy or .npz")
    items = read_input(run, source, split, data_dir)
    z = features(run, items.floats()).numpy()
    extra = {"y": items.y.numpy()} if items.y is not None and out.suffix.lower() == ".npz" else {}
    write_array(out, z, force, **extra)
    return {"output": str(out), "items": len(z), "features": z.shape[1], "labels": bool(extra)}
