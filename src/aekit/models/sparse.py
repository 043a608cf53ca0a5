"""The sparse autoencoder: only a few code units active per input."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import check
from .base import Autoencoder, Capabilities, ModelConfig, Output, sigmoid_squared_error
from .types import register_model

SPARSITY = ("kl", "l1", "topk")


@dataclass(frozen=True)
class SparseConfig(ModelConfig):
    """Options of the sparse autoencoder, beside the shared ones.

    sparsity: kl (sigmoid codes whose mean activation per unit is pulled towards rho by a KL penalty),
        l1 (ReLU codes with an L1 penalty on their size) or topk (linear codes, only the k largest
        kept per input).
    rho: target mean activation of each code unit, for kl.
    sparsity_weight: weight of the kl or l1 penalty against the reconstruction error.
    k: units kept per input, for topk.
    """

    sparsity: str = "kl"
    rho: float = 0.05
    sparsity_weight: float = 1.0
    k: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sparsity in SPARSITY, f"model.sparsity must be one of {', '.join(SPARSITY)}, got {self.sparsity!r}")
        check(0 < self.rho < 1, f"model.rho must be in (0, 1), got {self.rho}")
        check(self.sparsity_weight >= 0, f"model.sparsity_weight must be >= 0, got {self.sparsity_weight}")
        check(self.k >= 1, f"model.k must be at least 1, got {self.k}")
        if self.sparsity == "topk":
            check(self.k <= self.latent_dim, f"model.k ({self.k}) must not exceed latent_dim ({self.latent_dim})")
        check(
            self.latent_activation == "none",
            "model.latent_activation: the sparse autoencoder sets its code nonlinearity from --sparsity; leave it none",
        )


def kl_sparsity(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """Sum over units of KL(Bernoulli(rho) || Bernoulli(rho_hat)) (Ng's sparse autoencoder penalty)."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


@register_model("sae")
class SparseAutoencoder(Autoencoder):
    """Sparse autoencoder: KL-to-rho on sigmoid codes, L1 on ReLU codes, or top-k codes.

    Loss: squared error summed over features and averaged over the batch, plus sparsity_weight times the
    KL penalty (on the batch's mean activation per unit) or the mean L1 norm of the codes. Logs: "mse",
    "mean_activation" (mean code value), "active_fraction" (share of code units on: > 0.5 for sigmoid codes,
    nonzero otherwise).
    """

    Config = SparseConfig

    @property
    def least_code_values(self) -> int:
        return self.config.k if self.config.sparsity == "topk" else 1

    def code_of(self, h: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.sparsity == "kl":
            return torch.sigmoid(h)
        if c.sparsity == "l1":
            return torch.relu(h)
        flat = h.flatten(1)  # top-k over the whole code, a map's too
        top = flat.topk(c.k, dim=1)
        return torch.zeros_like(flat).scatter(1, top.indices, top.values).view_as(h)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # Sigmoid codes average rho; the decoder sees them divided by rho, so its weights need not grow
        # 1/rho times larger under Adam's fixed-size steps (an equivalent model that trains much better).
        return super().decode_logits(z / self.config.rho if self.config.sparsity == "kl" else z, labels)

    def check_refine(self, steps: int) -> None:
        super().check_refine(steps)
        check(not steps, "refining codes is for ae, dae and vae: a sae's fitted codes would not stay sparse")

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, figures=("sparse code",))

    def active(self, z: torch.Tensor) -> torch.Tensor:
        """Which code values count as on."""
        return z > 0.5 if self.config.sparsity == "kl" else z != 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Output:
        c = self.config
        z = self.encode(x, labels)
        reconstruction, x_hat = sigmoid_squared_error(self.decode_logits(z, labels), x)
        if c.sparsity == "kl":
            penalty = kl_sparsity(c.rho, z.mean(0))
        elif c.sparsity == "l1":
            penalty = z.abs().sum(1).mean()
        else:
            penalty = torch.zeros((), device=x.device)
        loss = reconstruction + c.sparsity_weight * penalty
        logs = {
            "mse": reconstruction.detach() / x[0].numel(),
            "sparsity_penalty": penalty.detach(),
            "mean_activation": z.detach().mean(),
            "active_fraction": self.active(z.detach()).float().mean(),
        }
        return Output(x_hat, z, loss, logs)
