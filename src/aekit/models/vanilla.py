"""The vanilla autoencoder: encode, decode, minimise squared reconstruction error (or, with rate_lambda, bits
plus error: a learned compressor)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..errors import check
from .base import Autoencoder, Capabilities, ModelConfig, Output, fit_codes, sigmoid_squared_error
from .hyperprior import ENTROPY_MODELS
from .layers import start_from_pca
from .types import register_model

RATE_REFINE_LR = 0.1  # Adam's step, in code units, when a compressor fits codes to an image (refine_rate)
ANNEALING = (0.5, 5.0)  # refine_rate's temperature: 0.5 * exp(-5 t), t from 0 to 1 over the steps


@dataclass(frozen=True)
class VanillaConfig(ModelConfig):
    """Options of the vanilla autoencoder, beside the shared ones.

    rate_lambda: train for rate and distortion (a learned compressor, Balle et al. 2017): the loss is the
        code's cost in bits under a learned density (models.entropy) plus rate_lambda times the squared
        error (summed over an item's values in [0, 1]); codes are rounded to integers, which is what
        `aekit compress` stores. Larger values buy quality with bits. On the resnet backbone training starts
        from block PCA (see start). Unset (default): plain reconstruction.
    entropy: a compressor's entropy model: "factorized" (one learned density per code channel) or
        "hyperprior" (resnet only: a Laplace per code value whose scale follows side information coded
        first, ScaleHyperprior in models.entropy; fewer bits where an image's regions differ, .aez version 3), or
        "meanscale" (the same, and the first channels coded less their mean over blocks of the code map, which the
        file carries: MeanScaleHyperprior, .aez version 4).
    """

    rate_lambda: float | None = None
    entropy: str = "factorized"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.rate_lambda is None or self.rate_lambda > 0,
            f"model.rate_lambda must be a positive number, got {self.rate_lambda}",
        )
        check(
            self.rate_lambda is None or self.latent_activation == "none",
            "model.rate_lambda: a compressor's code is rounded to integers; leave latent_activation none",
        )
        check(self.rate_lambda is None or not self.conditional, "model.rate_lambda: a compressor is not conditional")
        check(
            self.entropy in ENTROPY_MODELS,
            f"model.entropy must be one of {', '.join(ENTROPY_MODELS)}, got {self.entropy!r}",
        )
        check(
            self.entropy == "factorized" or self.rate_lambda is not None,
            "model.entropy: only a compressor has an entropy model; give rate_lambda too",
        )
        check(
            self.entropy == "factorized" or self.backbone == "resnet",
            "model.entropy hyperprior: side information over a code map; use --backbone resnet",
        )


@register_model("ae")
class VanillaAutoencoder(Autoencoder):
    """Vanilla autoencoder: squared reconstruction error, nothing else; or, with rate_lambda, a compressor.

    Loss: squared error summed over an item's features, averaged over the batch. Logs: "mse", the per-feature
    mean squared error.

    With rate_lambda (Balle, Laparra, Simoncelli, "End-to-end optimized image compression", ICLR 2017):

        x -> encoder -> y -> round -> q -> decoder -> x_hat          bits = -log2 p(q), p: models.entropy

    In training, the rate is taken at y + uniform noise in [-1/2, 1/2) (a differentiable stand-in for rounding
    whose density is what the model learns) and the decoder sees round(y) with the gradient passed straight
    through. Loss: mean over the batch of bits + rate_lambda * squared error. Outside training the code is
    rounded (encode returns integers). Logs also "bits" (per item) and, for images, "bpp" (bits per pixel).
    """

    Config = VanillaConfig

    def __init__(self, config: VanillaConfig) -> None:
        super().__init__(config)
        self.entropy = None
        if config.rate_lambda is not None:
            self.entropy = ENTROPY_MODELS[config.entropy](self.code_channels)

    @property
    def code_channels(self) -> int:
        """Channels of the code (each with its own density): the resnet's code map channels, else every
        dimension."""
        c = self.config
        return c.latent_channels if c.backbone == "resnet" else c.latent_dim

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, compressor=self.entropy is not None)

    def code_map(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, latent_dim) as the layout of models.entropy: (N, channels, h, w) maps for resnet, else
        (N, dimensions, 1)."""
        c = self.config
        size = c.code_size(*c.input_shape[1:]) if c.backbone == "resnet" else (1,)
        return z.reshape(len(z), self.code_channels, *size)

    def code_of(self, h: torch.Tensor) -> torch.Tensor:
        return torch.round(h) if self.entropy is not None and not self.training else h

    def check_refine(self, steps: int) -> None:
        super().check_refine(steps)
        check(not steps or self.entropy is None, "refining codes: a compressor's codes are integers; not refined")

    def refine_rate(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        logits: Callable[[torch.Tensor], torch.Tensor],
        steps: int,
        what: str | None = None,
    ) -> torch.Tensor:
        """A compressor's integer code maps for x, fitted to x itself: the encoder's code maps y (N, C, ...), then
        steps of Adam (step RATE_REFINE_LR) on the objective of training, bits + rate_lambda * squared error,
        summed over the items, with logits(q) the decoder's output for code maps q; the decoder and the entropy
        model are not changed, so the file format and its decoding are not either. Rounding is relaxed by
        stochastic Gumbel annealing (Yang, Bamler, Mandt, "Improving inference for neural image compression",
        NeurIPS 2020): each value is a random mix of its floor and ceiling, the nearer one likelier, the mix
        sharpening to a choice as the temperature falls (ANNEALING); the noise comes from a fixed seed, so the
        same input gives the same file. An encoder trained on a few photos is far from the best code of a new
        one (the gain: docs/benchmarks.md). Each step is a forward and backward pass of the decoder and the
        entropy model. what: shows the steps' progress so named."""
        check(self.entropy is not None, "refining codes for rate: only a compressor (rate_lambda) has a rate")
        generator = torch.Generator(y.device).manual_seed(0)
        start, decay = ANNEALING
        # each step's temperature on its own (float32, as a tensor of all steps would give it): nothing of size steps
        temperatures = (
            (start * torch.exp(-decay * torch.arange(i, i + 1) / max(steps, 1))).item() for i in range(steps)
        )

        def gradient(y: torch.Tensor) -> torch.Tensor:
            q = _annealed_round(y, next(temperatures), generator)
            error = sigmoid_squared_error(logits(q), x)[0] * len(x)  # summed over the items
            loss = self.entropy.bits(q).sum() + self.config.rate_lambda * error
            return torch.autograd.grad(loss, [y])[0]

        return torch.round(fit_codes(y, gradient, steps, RATE_REFINE_LR, what))

    def start(self, x: torch.Tensor) -> None:
        """On the resnet backbone, start as a block transform (layers.start_from_pca): 8x8 block PCA with the
        default sizes, which training then improves (from random weights, minutes of CPU training stay below
        it). A compressor quantizes those coefficients with the step that minimises bits + rate_lambda *
        squared error for a high-rate uniform quantizer of orthonormal coefficients, sqrt(6 / (rate_lambda ln
        2)), and its density is fitted to those first codes: a start from random weights needs far longer
        training to reach the same rate and error."""
        c = self.config
        if c.backbone != "resnet":
            return
        if self.entropy is None:
            start_from_pca(self.encoder, self.decoder, x, 1.0, weighted=True)
            return
        start_from_pca(self.encoder, self.decoder, x, math.sqrt(6 / (c.rate_lambda * math.log(2))))
        with torch.no_grad():
            codes = self.code_map(self.encoder(x))
        self.entropy.fit(codes)

    def after_epoch(self) -> None:
        if self.entropy is not None:
            self.entropy.update_tables()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Output:
        z = self.encode(x, labels)
        if self.entropy is None:
            loss, x_hat = sigmoid_squared_error(self.decode_logits(z, labels), x)
            return Output(x_hat, z, loss, {"mse": loss.detach() / x[0].numel()})
        bits = self.entropy.bits(self.code_map(z), noisy=self.training)
        rounded = z + (torch.round(z) - z).detach()  # straight through; z is already whole outside training
        error, x_hat = sigmoid_squared_error(self.decode_logits(rounded), x)
        loss = bits.mean() + self.config.rate_lambda * error
        logs = {"mse": error.detach() / x[0].numel(), "bits": bits.detach().mean()}
        if x.dim() == 4:
            logs["bpp"] = logs["bits"] / (x.shape[2] * x.shape[3])
        return Output(x_hat, z, loss, logs)


def _annealed_round(y: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """y relaxed towards integers: floor(y) + w, w a Gumbel-softmax sample between 0 (floor) and 1 (ceiling) with
    logits -atanh of the distance to each, at the temperature (stochastic Gumbel annealing)."""
    floor = torch.floor(y)
    r = (y - floor).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)]) / temperature
    u = torch.rand(logits.shape, generator=generator, device=y.device, dtype=y.dtype).clamp_min(1e-10)
    return floor + torch.softmax(logits - torch.log(-torch.log(u)), dim=0)[1]
