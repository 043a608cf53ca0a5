"""Where `generate` draws codes from (its sampler): the model's own prior, or a density fitted after training to the
codes of the run's training data (ex-post density estimation: Ghosh, Sajjadi, Vergari, Black, Scholkopf, "From
variational to deterministic autoencoders", ICLR 2020), which lets every type generate.

    prior      the type's own (Capabilities.samples: model.sample), the default where there is one
    gaussian   one Gaussian with a full covariance, the default for a type without a prior
    gmm        a mixture of Gaussians with full covariances (GMM_COMPONENTS by default), fitted by EM

A conditional model's fitted densities are one per class, each fitted to the codes of that class's items.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import check
from ..run import Run
from . import encode_all

SAMPLERS = ("prior", "gaussian", "gmm")
GMM_COMPONENTS = 10  # one per class of a ten-class dataset such as MNIST
REGULARIZATION = 1e-6  # added to each covariance's diagonal: codes that vary along fewer than D directions still fit


@dataclass(frozen=True)
class Mixture:
    """A mixture of K Gaussians over D-number codes: weights (K,), means (K, D), Cholesky factors of the
    covariances (K, D, D), float32."""

    weights: torch.Tensor
    means: torch.Tensor
    factors: torch.Tensor

    def sample(self, n: int, temperature: float, generator: torch.Generator) -> torch.Tensor:
        """n codes (n, D), each drawn from a component chosen by weight, its spread scaled by temperature."""
        k = torch.zeros(n, dtype=torch.long)
        if len(self.weights) > 1:  # one component: the generator draws exactly what a single Gaussian would
            k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator)  # (n, D)
        return self.means[k] + temperature * torch.einsum("nij,nj->ni", self.factors[k], eps)


def choose(model: torch.nn.Module, sampler: str | None) -> str:
    """The sampler to draw with: sampler, checked, or the model's default. AekitError for one the model lacks."""
    if sampler is None:
        return "prior" if model.capabilities.samples else "gaussian"
    check(sampler in SAMPLERS, f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    check(
        sampler != "prior" or model.capabilities.samples,
        f"a {model.name} model has no prior; --sampler gaussian or gmm draws from densities fitted to its codes",
    )
    return sampler


def training_codes(run: Run, data_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the codes (N, D) float64 of the run's training data, their labels (N,)) for a conditional model, which
    encodes each item with its label; (the codes, None) for any other."""
    train = run.load_data(data_dir=data_dir).train
    labels = train.y if run.model.config.conditional else None
    return encode_all(run.model, train.floats(), labels).double(), labels


def draw(
    codes: tuple[torch.Tensor, torch.Tensor | None],
    fit: Callable[[torch.Tensor, str], Mixture],
    labels: torch.Tensor | None,
    n: int,
    temperature: float,
    generator: torch.Generator,
    where: str,
) -> torch.Tensor:
    """n codes (n, D) drawn from a density fit(codes, where) fitted to the training codes (training_codes); for a
    conditional model, whose new items have labels (n,), each from the density fitted to the codes of its class alone
    (the codes of one class, p(z | y), not of all: what a conditional model's decoder saw with that label)."""
    z, code_labels = codes
    if labels is None:
        return fit(z, where=where).sample(n, temperature, generator)
    out = torch.empty(n, z.shape[1])
    for k in labels.unique().tolist():
        mine = labels == k
        density = fit(z[code_labels == k], where=f"{where} (label {k})")
        out[mine] = density.sample(int(mine.sum()), temperature, generator)
    return out


def fit_gaussian(codes: torch.Tensor, where: str) -> Mixture:
    """One Gaussian with the mean and full covariance of codes (N, D). AekitError if they have no usable spread."""
    n, d = codes.shape
    check(n >= 2, f"{where}: {n} training code{'s' * (n != 1)}: too few to fit a Gaussian to")
    cov = torch.cov(codes.T).reshape(d, d) + REGULARIZATION * torch.eye(d, dtype=torch.float64)
    factor, info = torch.linalg.cholesky_ex(cov)
    check(
        int(info) == 0 and bool(torch.isfinite(factor).all()),
        f"{where}: the codes of the training data have no usable spread to draw new codes from",
    )
    return Mixture(torch.ones(1), codes.mean(0).float()[None], factor.float()[None])


def fit_gmm(codes: torch.Tensor, components: int, where: str) -> Mixture:
    """A mixture of components Gaussians with full covariances fitted to codes (N, D) by EM (scikit-learn, seeded:
    the same codes give the same mixture). AekitError where there are too few codes for it: each component's
    covariance needs more codes than the code has numbers."""
    from sklearn.mixture import GaussianMixture

    n, d = codes.shape
    check(components >= 1, f"--components must be at least 1, got {components}")
    least = (d + 1) * components
    check(
        n >= least,
        f"{where}: --sampler gmm: {n:,} training codes are too few for {components} components of {d} numbers "
        f"(at least {least:,}); give fewer --components or use --sampler gaussian",
    )
    gmm = GaussianMixture(components, covariance_type="full", reg_covar=REGULARIZATION, random_state=0)
    gmm.fit(codes.numpy())
    factors = torch.linalg.cholesky(torch.from_numpy(gmm.covariances_))  # (K, D, D)
    weights = torch.from_numpy(gmm.weights_).float()
    return Mixture(weights / weights.sum(), torch.from_numpy(gmm.means_).float(), factors.float())
