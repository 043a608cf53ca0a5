"""The VAE's priors p(z), a registry by name (VariationalConfig.prior):

    normal   N(0, I), the classic; its KL to a diagonal Gaussian posterior has a closed form, unit by unit
    vamp     a mixture of the posteriors of K learned pseudo-inputs, (1/K) sum_k q(z | u_k) (the VampPrior: Tomczak &
             Welling, "VAE with a VampPrior", AISTATS 2018): the prior the ELBO asks for is the average posterior,
             and this one learns to approach it; its KL is estimated from the posterior's draw of z

Every prior takes the posterior function of its model (x (N, *input_shape) -> (mu, logvar), each (N, L)) where it
needs one, so that it holds no reference to the model it is part of.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)
Posterior = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension: z, mu, logvar (..., L) -> (...)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class Prior(nn.Module):
    """What every prior over codes of latent_dim numbers does: log_prob, kl, sample (and start, a no-op here)."""

    factorized = False  # whether its KL splits into one term per code unit, kl_units (what free bits needs)

    def __init__(self, latent_dim: int, input_shape: tuple[int, ...], options: dict) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def start(self, x: torch.Tensor) -> None:
        """A start from training items x (N, *input_shape): nothing by default."""


class NormalPrior(Prior):
    """N(0, I) over codes of latent_dim numbers."""

    factorized = True

    def log_prob(self, z: torch.Tensor, posterior: Posterior) -> torch.Tensor:
        """log p(z) of codes z (..., L): (...)."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def kl_units(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, 1)) of each code unit, (N, L), in nats."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)

    def kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, posterior: Posterior) -> torch.Tensor:
        """KL(q(z | x) || p(z)) per item, (N,): in closed form (z unused)."""
        return self.kl_units(mu, logvar).sum(1)

    def sample(self, n: int, temperature: float, generator, posterior: Posterior, device) -> torch.Tensor:
        """n codes (n, L) from the prior, their spread scaled by temperature."""
        return torch.randn(n, self.latent_dim, generator=generator, device=device) * temperature


class VampPrior(Prior):
    """(1/K) sum_k q(z | u_k) over K pseudo-inputs u (K, *input_shape), learned with the model and kept in [0, 1]
    (the items a posterior is defined on); they start as training items (start), else as uniform noise."""

    def __init__(self, latent_dim: int, input_shape: tuple[int, ...], options: dict) -> None:
        super().__init__(latent_dim, input_shape, options)
        self.pseudo_inputs = nn.Parameter(torch.rand(options["pseudo_inputs"], *input_shape))

    def components(self, posterior: Posterior) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the K mixture components, each (K, L): the posteriors of the pseudo-inputs."""
        return posterior(self.pseudo_inputs.clamp(0, 1))

    def log_prob(self, z: torch.Tensor, posterior: Posterior) -> torch.Tensor:
        """log (1/K) sum_k N(z; mu_k, var_k) of codes z (..., L): (...). The squared distances to the K components
        come from matrix products, so memory grows with the codes times K, not times K times L."""
        mu, logvar = self.components(posterior)  # (K, L)
        precision = torch.exp(-logvar)  # (K, L)
        flat = z.reshape(-1, z.shape[-1])  # (M, L)
        quadratic = (
            flat.pow(2) @ precision.T - 2 * flat @ (mu * precision).T + (mu.pow(2) * precision).sum(1)
        )  # (M, K): sum_l (z_l - mu_kl)^2 / var_kl
        log_k = -0.5 * (quadratic + (logvar.sum(1) + LOG_2PI * z.shape[-1]))  # (M, K)
        return (torch.logsumexp(log_k, 1) - math.log(len(mu))).reshape(z.shape[:-1])

    def kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, posterior: Posterior) -> torch.Tensor:
        """log q(z | x) - log p(z) at the posterior's draw z (N, L): an unbiased estimate of the KL per item, (N,)."""
        return gaussian_log_prob(z, mu, logvar) - self.log_prob(z, posterior)

    def sample(self, n: int, temperature: float, generator, posterior: Posterior, device) -> torch.Tensor:
        """n codes (n, L): a pseudo-input's posterior chosen uniformly for each, its spread scaled by temperature."""
        mu, logvar = self.components(posterior)
        k = torch.randint(len(mu), (n,), generator=generator, device=device)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return mu[k] + temperature * (0.5 * logvar[k]).exp() * eps

    @torch.no_grad()
    def start(self, x: torch.Tensor) -> None:
        """The pseudo-inputs start as the first training items x (N, *input_shape), in turn where there are fewer."""
        k = len(self.pseudo_inputs)
        self.pseudo_inputs.copy_(x[torch.arange(k, device=x.device) % len(x)].clamp(0, 1))


PRIORS: dict[str, type[Prior]] = {"normal": NormalPrior, "vamp": VampPrior}
