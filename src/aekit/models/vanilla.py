"""The vanilla autoencoder: encode, decode, minimise squared reconstruction error."""

from __future__ import annotations

import torch

from ..registry import register_model
from .base import Autoencoder, ModelConfig, Output, sigmoid_squared_error


@register_model("ae")
class VanillaAutoencoder(Autoencoder):
    """Vanilla autoencoder: squared reconstruction error, nothing else.

    Loss: squared error summed over an item's features, averaged over the batch. Logs: "mse", the
    per-feature mean squared error.
    """

    Config = ModelConfig

    def forward(self, x: torch.Tensor) -> Output:
        z = self.encode(x)
        loss, x_hat = sigmoid_squared_error(self.decode_logits(z), x)
        return Output(x_hat, z, loss, {"mse": loss.detach() / x[0].numel()})
