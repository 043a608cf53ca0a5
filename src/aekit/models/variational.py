"""The variational autoencoder: a Gaussian posterior over the code, a likelihood over the data, and a
standard normal prior to sample new data from."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check
from ..limits import INFERENCE_BATCH
from ..progress import chunks
from .base import Autoencoder, Capabilities, ModelConfig, Output
from .priors import LOG_2PI, PRIORS
from .types import register_model

LIKELIHOODS = ("bernoulli", "gaussian")
MAX_NLL_K = 100_000  # importance samples per item: published figures use 5000


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw z = mu + sigma * eps, eps ~ N(0, I), differentiable in mu and logvar (Kingma & Welling 2014)."""
    if generator is None:  # the same draw; randn_like also traces under torch.compile with dynamic shapes
        eps = torch.randn_like(mu)
    else:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


@dataclass(frozen=True)
class VariationalConfig(ModelConfig):
    """Options of the variational autoencoder, beside the shared ones.

    likelihood: bernoulli (each value a coin whose probability the decoder gives; for binary or [0, 1]
        data) or gaussian (the decoder gives the mean, with one learned standard deviation).
    beta: weight of the KL term (1 is the true ELBO; above 1 a beta-VAE).
    kl_warmup_steps: optimizer steps over which the KL weight ramps linearly from 0 to beta.
    free_bits: nats of KL per code unit (batch average) that are not penalised, against posterior collapse.
    binarize: sample each training batch to 0/1 with its values as probabilities (dynamic binarization;
        bernoulli only); evaluation binarizes with a fixed seed.
    prior: p(z): normal (N(0, I)) or vamp (a mixture of the posteriors of learned pseudo-inputs, the VampPrior;
        mlp and conv backbones).
    pseudo_inputs: vamp: how many pseudo-inputs (mixture components); they start as the first training items.
    """

    likelihood: str = "bernoulli"
    beta: float = 1.0
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    binarize: bool = False
    prior: str = "normal"
    pseudo_inputs: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.likelihood in LIKELIHOODS,
            f"model.likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}",
        )
        check(self.beta >= 0, f"model.beta must be >= 0, got {self.beta}")
        check(self.kl_warmup_steps >= 0, f"model.kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
        check(self.free_bits >= 0, f"model.free_bits must be >= 0, got {self.free_bits}")
        check(not self.binarize or self.likelihood == "bernoulli", "model.binarize needs the bernoulli likelihood")
        check(self.prior in PRIORS, f"model.prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.prior == "vamp":
            check(self.pseudo_inputs >= 1, f"model.pseudo_inputs must be at least 1, got {self.pseudo_inputs}")
            check(self.backbone != "resnet", "model.prior vamp takes the mlp or conv backbone, not resnet")
            check(not self.conditional, "model.prior vamp: a conditional vae keeps the normal prior")
            check(self.free_bits == 0, "model.free_bits needs the normal prior (its KL is one term per code unit)")
        check(
            self.latent_activation == "none",
            "model.latent_activation: the VAE's posterior mean and log-variance are linear; leave it none",
        )


@register_model("vae")
class VariationalAutoencoder(Autoencoder):
    """Variational autoencoder (Kingma & Welling 2014) with a diagonal Gaussian posterior.

    Loss: negative log-likelihood of the input summed over features (Bernoulli or Gaussian), plus beta
    times the KL divergence to N(0, I) (with optional warm-up and free bits), averaged over the batch.
    encode(x) is the posterior mean. Logs: "mse" (of the mean reconstruction), "rec", "kl", "elbo" (per
    item, beta = 1).
    """

    Config = VariationalConfig

    def __init__(self, config: VariationalConfig) -> None:
        super().__init__(config)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # for the KL warm-up; saved
        if config.likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(0.1)))
        self.prior = PRIORS[config.prior](
            config.latent_dim, config.input_shape, {"pseudo_inputs": config.pseudo_inputs}
        )

    def start(self, x: torch.Tensor) -> None:
        """The prior's start from the first training items x (the VampPrior's pseudo-inputs)."""
        self.prior.start(x)

    def code_features(self) -> int:
        return 2 * self.config.latent_dim

    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x) (q(z | x, y) with a conditional model's labels), each (N, latent_dim)."""
        mu, logvar = self.encoder_output(x, labels).chunk(2, dim=1)
        return mu, logvar.clamp(-20, 10)

    def code_of(self, h: torch.Tensor) -> torch.Tensor:
        return h.chunk(2, dim=1)[0]  # the posterior's mean (a resnet's map: its first half of channels)

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per item, (N,), from decoder logits."""
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        scaled = (x - torch.sigmoid(logits)) / self.log_sigma.exp()
        return -0.5 * (scaled.pow(2) + 2 * self.log_sigma + LOG_2PI).flatten(1).sum(1)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The data the likelihood is of: x, or a 0/1 sample of it when binarize is on."""
        if not self.config.binarize:
            return x
        generator = None if self.training else torch.Generator(x.device).manual_seed(0)
        return torch.bernoulli(x.clamp(0, 1), generator=generator)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Output:
        c = self.config
        target = self.target(x)
        mu, logvar = self.posterior(target, labels)
        z = reparameterize(mu, logvar)
        logits = self.decode_logits(z, labels)
        rec = -self.log_likelihood(logits, target)  # (N,)
        if self.prior.factorized:
            kl_units = self.prior.kl_units(mu, logvar)  # (N, latent_dim)
            kl = kl_units.sum(1)
            kl_term = kl_units.mean(0).clamp(min=c.free_bits).sum() if c.free_bits > 0 else kl.mean()
        else:
            kl = self.prior.kl(z, mu, logvar, self.posterior)  # (N,), estimated at the draw z
            kl_term = kl.mean()
        weight = c.beta
        if self.training:
            if c.kl_warmup_steps:
                weight *= min(1.0, (self.steps.item() + 1) / c.kl_warmup_steps)
            self.steps += 1
            x_hat = torch.sigmoid(logits)
        else:
            x_hat = torch.sigmoid(self.decode_logits(mu, labels))  # the mean reconstruction, deterministic
        loss = rec.mean() + weight * kl_term
        logs = {
            "mse": (x_hat.detach() - x).pow(2).mean(),
            "rec": rec.detach().mean(),
            "kl": kl.detach().mean(),
            "elbo": -(rec + kl).detach().mean(),
        }
        return Output(x_hat.detach(), mu, loss, logs)

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, samples=True, likelihood=True, random_scores=True)

    def training_notes(self, steps: int) -> list[str]:
        warmup = self.config.kl_warmup_steps
        if warmup > steps:
            return [f"the KL warm-up takes {warmup} steps but the run has {steps}: its weight never reaches beta"]
        return []

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n new items (N, *input_shape): decoder means at z ~ N(0, temperature^2 I) (of the classes labels (n,) for a
        conditional model)."""
        z = self.prior.sample(n, temperature, generator, self.posterior, self.device)
        return self.decode(z, labels)

    @torch.no_grad()
    def nll(
        self,
        x: torch.Tensor,
        k: int = 1000,
        batch_size: int = 4096,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Importance-sampled negative log-likelihood per item, (N,) float64 in nats (Burda et al. 2016):
        -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x). x is taken as given (binarize it first); a
        conditional model's is -log p(x | y) for the items' labels (N,).

        Memory stays at batch_size samples whatever k (the log-mean is accumulated pass by pass); k is at
        most MAX_NLL_K, and a terminal shows the progress over the items.
        """
        check(1 <= k <= MAX_NLL_K, f"nll needs between 1 and {MAX_NLL_K} importance samples, got {k}")
        out = []
        items = max(1, batch_size // k)  # items per pass, each with k samples (or fewer passes per item)
        per_pass = max(1, min(k, batch_size))
        for part in chunks(len(x), items, "importance sampling" if len(x) * k > 10**6 else None):
            xb, yb = x[part], None if labels is None else labels[part]
            mu, logvar = self.posterior(xb, yb)
            std = (0.5 * logvar).exp()
            total = torch.full((len(xb),), -math.inf, dtype=torch.float64, device=xb.device)
            for s in range(0, k, per_pass):
                m = min(per_pass, k - s)
                eps = torch.randn(m, *mu.shape, generator=generator, device=mu.device)  # (m, B, L)
                z = mu + std * eps
                logits = self.decode_logits(z.flatten(0, 1), None if yb is None else yb.repeat(m))
                log_px = self.log_likelihood(logits, xb.repeat(m, *([1] * (xb.dim() - 1)))).view(m, -1)
                log_pz = self.prior.log_prob(z, self.posterior)  # (m, B)
                log_qz = -0.5 * (eps.pow(2) + LOG_2PI).sum(-1) - std.log().sum(-1)
                total = torch.logaddexp(total, torch.logsumexp((log_px + log_pz - log_qz).double(), 0))
            out.append(math.log(k) - total)
        return torch.cat(out)

    @torch.no_grad()
    def anomaly_scores(self, x: torch.Tensor, batch_size: int = INFERENCE_BATCH, samples: int = 8) -> torch.Tensor:
        """Negative ELBO per item (nats), (N,) float64, from `samples` draws of z per item with a fixed
        seed (the same scores on every call). x is taken as given, not binarized."""
        generator = torch.Generator(x.device).manual_seed(0)
        out = []
        for xb in x.split(batch_size):
            mu, logvar = self.posterior(xb)
            kl = self.prior.kl_units(mu, logvar).sum(1) if self.prior.factorized else 0.0  # else: estimated per draw
            rec = 0.0
            for _ in range(samples):
                z = reparameterize(mu, logvar, generator)
                rec = rec - self.log_likelihood(self.decode_logits(z), xb) / samples
                if not self.prior.factorized:
                    kl = kl + self.prior.kl(z, mu, logvar, self.posterior) / samples
            out.append((rec + kl).double())
        return torch.cat(out)

    @torch.no_grad()
    def extra_metrics(
        self, x: torch.Tensor, nll_k: int = 0, labels: torch.Tensor | None = None, **options
    ) -> dict[str, float]:
        """Active units (Burda et al.: Var_x E_q[z_u] > 0.01) and, with nll_k > 0, the importance-sampled
        NLL over x (binarized with a fixed seed when binarize is on; given a conditional model's labels)."""
        target = self.target(x)  # eval mode: seeded
        parts = [slice(i, i + INFERENCE_BATCH) for i in range(0, len(x), INFERENCE_BATCH)]
        mu = torch.cat([self.posterior(target[p], None if labels is None else labels[p])[0] for p in parts])
        result = {"active_units": int((mu.var(0) > 0.01).sum())}
        if nll_k:
            seeded = torch.Generator(x.device).manual_seed(0)
            nll = self.nll(target, nll_k, generator=seeded, labels=labels)
            result.update({"nll": float(nll.mean()), "nll_k": nll_k})
        return result
