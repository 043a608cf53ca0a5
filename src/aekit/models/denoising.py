"""The denoising autoencoder: corrupt the input, rebuild the clean one."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import metrics
from ..data.noise import IMAGE_NOISES, NOISES, corrupt
from ..errors import check
from ..limits import INFERENCE_BATCH
from .base import Autoencoder, Capabilities, ModelConfig, Output, sigmoid_squared_error
from .layers import start_from_pca
from .types import register_model


@dataclass(frozen=True)
class DenoisingConfig(ModelConfig):
    """Options of the denoising autoencoder, beside the shared ones.

    noise: corruptions applied to each training batch, any of shift, gaussian, salt_pepper, masking, paste
        (comma-separated to combine them; applied in that order). shift (images only) moves each image
        by up to noise_shift pixels: codes that ignore small shifts make better features. paste (images) lays
        foreign content over a part of half the images: a dae trained so (with skips) makes anomaly maps
        that mark what does not belong (data.noise.paste).
    noise_sigma: standard deviation of the Gaussian noise (the result is clipped to [0, 1]).
    noise_sigma_max: with it, each training item's standard deviation is drawn uniformly from [noise_sigma,
        noise_sigma_max]: a blind denoiser, for noise of a strength it is not told (evaluate draws them so too).
    noise_p: fraction of values hit by salt_pepper (set to 0 or 1) and by masking (set to 0).
    noise_shift: largest shift, in pixels, of each image's rows and columns, either way.
    skips: resnet backbone only: U-Net skip connections, each encoder stage's features added into the decoder
        stage of its size. They bypass the code, which is right for denoising (detail need not squeeze through
        it) and wrong for compression, generation and features (the code alone no longer rebuilds the input):
        such a model refuses to compress and to decode codes alone.
    """

    noise: tuple[str, ...] = ("gaussian",)
    noise_sigma: float = 0.5
    noise_sigma_max: float | None = None
    noise_p: float = 0.25
    noise_shift: int = 1
    skips: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [n for n in self.noise if n not in NOISES]
        check(
            self.noise and not unknown,
            f"model.noise must name one or more of {', '.join(NOISES)}, got {', '.join(self.noise) or 'nothing'}",
        )
        check(self.noise_sigma >= 0, f"model.noise_sigma must be >= 0, got {self.noise_sigma}")
        check(
            self.noise_sigma_max is None or self.noise_sigma_max >= self.noise_sigma,
            f"model.noise_sigma_max must be at least noise_sigma ({self.noise_sigma}), got {self.noise_sigma_max}",
        )
        check(0 <= self.noise_p <= 1, f"model.noise_p must be in [0, 1], got {self.noise_p}")
        check(self.noise_shift >= 0, f"model.noise_shift must be >= 0, got {self.noise_shift}")
        check(not self.skips or self.backbone == "resnet", "model.skips needs the resnet backbone")
        for kind in IMAGE_NOISES:
            check(
                kind not in self.noise or len(self.input_shape) == 3,
                f"model.noise {kind} is for images; tables (N, D) have no rows and columns",
            )


@register_model("dae")
class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder: corrupts each training batch, learns to rebuild the clean input.

    Loss: squared error against the clean input, summed over features, averaged over the batch. No noise
    is added in eval mode (validation, encode, decode). Logs: "mse".
    """

    Config = DenoisingConfig

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x with this model's training noise applied."""
        c = self.config
        return corrupt(x, c.noise, c.noise_sigma, c.noise_p, generator, c.noise_shift, c.noise_sigma_max)

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, decodes_codes=not self.config.skips, figures=("denoising",))

    def start(self, x: torch.Tensor) -> None:
        """On the resnet backbone, start as block PCA of the clean items (layers.start_from_pca), as the ae does:
        a projection on the main components already removes part of the noise."""
        if self.config.backbone == "resnet":
            start_from_pca(self.encoder, self.decoder, x, 1.0, weighted=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Output:
        z, logits = self._through(self.corrupt(x) if self.training else x, labels)
        loss, x_hat = sigmoid_squared_error(logits, x)
        return Output(x_hat, z, loss, {"mse": loss.detach() / x[0].numel()})

    def _through(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(code, logits) of x (and a conditional model's labels): through the code, and the skips where the model
        has them."""
        if not self.config.skips:
            z = self.encode(x, labels)
            return z, self.decode_logits(z, labels)
        self.check_input(x)
        skips: list[torch.Tensor] = []
        z = self.encoder(x, skips)
        return z, self.decoder(z, skips)

    @torch.no_grad()
    def reconstruct(
        self, x: torch.Tensor, batch_size: int = INFERENCE_BATCH, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        if labels is not None:  # a conditional model has no skips
            return super().reconstruct(x, batch_size, labels)
        return torch.cat([torch.sigmoid(self._through(xb)[1]) for xb in x.split(batch_size)])

    @torch.no_grad()
    def extra_metrics(self, x: torch.Tensor, labels: torch.Tensor | None = None, **options) -> dict[str, float]:
        """PSNR of the noisy input and of the model's output against the clean x (seeded noise)."""
        noisy = self.corrupt(x, torch.Generator(x.device).manual_seed(0))
        denoised = self.reconstruct(noisy, labels=labels)
        return {
            "noisy_psnr_db": metrics.psnr(float((noisy - x).pow(2).mean())),
            "denoised_psnr_db": metrics.psnr(float((denoised - x).pow(2).mean())),
            "denoised_mse": float((denoised - x).pow(2).mean()),
        }
