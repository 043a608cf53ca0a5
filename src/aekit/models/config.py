"""The options every autoencoder type shares (ModelConfig): sizes, backbone, activations, and what each fills in
from the data where it is left out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import check
from .layers import ACTIVATIONS, BACKBONES, DEFAULT_HIDDEN, RESNET_DEFAULTS, code_size

RESNET_TRAINING = {"batch_size": 16, "lr": 2e-3, "schedule": "cosine"}  # ModelConfig.train_defaults


@dataclass(frozen=True)
class ModelConfig:
    """Options every autoencoder type shares.

    input_shape: one item's shape, (C, H, W) for images or (D,) for tables (taken from the data).
    backbone: "mlp" (fully connected), "conv" (stride-2 convolutions, transposed in the decoder; images only)
        or "resnet" (fully convolutional residual stages, upsampling by resize and convolution; images only;
        its code is a map of latent_channels x H/2^s x W/2^s for s stages).
    hidden: layer widths from input to code, mirrored by the decoder: units per layer for mlp (default
        128,64, narrower for items of under 32 values: 4 and 2 units per value), channels per stride-2
        convolution for conv (default 32,64,128), channels per stage for resnet (default 96: one stage, on
        4x4 cells with a code of 16 channels where patch and latent_channels are left out too).
    latent_dim: size of the code z (default 32, or a third of an item's values when that is less: a code
        smaller than what it encodes). For resnet it follows from latent_channels and the image size.
    latent_channels: resnet: channels of the code map (default 16 with the default hidden: 16 numbers per 8x8
        block of pixels; 4 with hidden given: 4 per 4x4 block with two stages; either 1/12 of an RGB image's
        numbers).
    patch: resnet: cut the image into patch x patch cells, each a position of patch*patch*C channels (a pixel
        unshuffle) before the first stage, and rebuild them after the last (a pixel shuffle): the stages run at
        1/patch of the size, about patch^2 times fewer operations, and the code map is patch times smaller
        again. A power of 2; default 4 with the default hidden, else 1 (the stages start at full size).
    activation: nonlinearity between layers (default relu; silu for resnet).
    latent_activation: nonlinearity on the code, "none" by default (the classic example puts a ReLU
        there, which switches code units off for good and costs reconstruction quality).
    pixel_output: resnet: the decoder's sum (its stages plus its linear path) is the pixels, clamped to [0, 1]
        (layers.pixel_logits), so that the linear path is a linear map to pixels and starts as block PCA exactly
        (start_from_pca); false: it is their logits, turned into pixels by a sigmoid. Default true for the resnet
        whose sizes are left out, false otherwise (what runs trained before the option have).
    conditional: train on (item, label) pairs: the label is an input of the encoder (one-hot numbers after the
        item's, a constant plane per class after an image's channels) and of the decoder (one-hot numbers after the
        code), so that generate --label draws items of one class (mlp and conv backbones; labelled data).
    classes: conditional: the labels the model takes, 0 to classes - 1 (from the training data).
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    backbone: str = "mlp"
    hidden: tuple[int, ...] | None = None
    latent_dim: int | None = None
    latent_channels: int | None = None
    activation: str | None = None
    latent_activation: str = "none"
    patch: int | None = None
    pixel_output: bool | None = None
    conditional: bool = False
    classes: int = 0

    def __post_init__(self) -> None:
        check(
            len(self.input_shape) in (1, 3) and all(s >= 1 for s in self.input_shape),
            f"model.input_shape must be (C, H, W) or (D,) with positive sizes, got {list(self.input_shape)}",
        )
        check(
            self.backbone in BACKBONES, f"model.backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}"
        )
        values = math.prod(self.input_shape)
        if self.hidden is None and self.backbone == "resnet":  # the default resnet: sizes that go together
            if self.pixel_output is None:
                object.__setattr__(self, "pixel_output", True)
            for name, value in RESNET_DEFAULTS.items():
                if getattr(self, name) is None:
                    object.__setattr__(self, name, value)
        if self.hidden is None:  # frozen: fill in the defaults once, so that config.json records them
            hidden = DEFAULT_HIDDEN[self.backbone]
            if self.backbone == "mlp":
                hidden = (min(hidden[0], max(16, 4 * values)), min(hidden[1], max(8, 2 * values)))
            object.__setattr__(self, "hidden", hidden)
        if self.activation is None:
            object.__setattr__(self, "activation", "silu" if self.backbone == "resnet" else "relu")
        if self.patch is None:
            object.__setattr__(self, "patch", 1)
        check(
            all(h >= 1 for h in self.hidden), f"model.hidden sizes must be positive integers, got {list(self.hidden)}"
        )
        if self.backbone != "mlp":
            need = f"the {self.backbone} backbone needs images (C, H, W); use --backbone mlp for tables"
            check(len(self.input_shape) == 3, need)
            check(len(self.hidden) >= 1, f"the {self.backbone} backbone needs at least one entry in hidden (channels)")
        if self.backbone == "resnet":
            self._resnet_code()
            if self.pixel_output is None:
                object.__setattr__(self, "pixel_output", False)
        else:
            check(self.latent_channels is None, "model.latent_channels applies to the resnet backbone only")
            check(self.patch == 1, "model.patch applies to the resnet backbone only")
            check(not self.pixel_output, "model.pixel_output applies to the resnet backbone only")
        if self.latent_dim is None:
            object.__setattr__(self, "latent_dim", min(32, max(2, values // 3)))
        check(self.latent_dim >= 1, f"model.latent_dim must be a positive integer, got {self.latent_dim}")
        self._check_conditional()
        check(
            self.activation in ACTIVATIONS,
            f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
        )
        check(
            self.latent_activation == "none" or self.latent_activation in ACTIVATIONS,
            f"model.latent_activation must be none or one of {', '.join(ACTIVATIONS)}, got {self.latent_activation!r}",
        )

    def _check_conditional(self) -> None:
        if not self.conditional:
            check(self.classes == 0, "model.classes applies to a conditional model only")
            return
        check(self.backbone != "resnet", "--conditional takes the mlp or conv backbone, not resnet")
        check(self.classes >= 1, f"a conditional model needs at least 1 class, got {self.classes}")

    def train_defaults(self) -> dict[str, Any]:
        """Training options this model trains best with where the user gives none (TrainConfig.for_data): the
        resnet backbone, on crops of photos, many small batches at a higher rate decaying to 0 (batch 16, lr
        2e-3, cosine: docs/benchmarks.md, "Photos with the defaults"); none for the others."""
        return dict(RESNET_TRAINING) if self.backbone == "resnet" else {}

    @property
    def any_size(self) -> bool:
        """Whether the model is fully convolutional: its uses take images of any size (in tiles of input_shape)."""
        return self.backbone == "resnet"

    @property
    def stages(self) -> int:
        """resnet: halvings from the image to the code map (log2(patch) + one per stage; the code is H/2^s)."""
        return self.patch.bit_length() - 1 + len(self.hidden)

    def code_size(self, height: int, width: int) -> tuple[int, int]:
        """resnet: the code map's (h, w) for an image of (height, width) (layers.code_size)."""
        return code_size(height, width, self.stages)

    def _resnet_code(self) -> None:
        """latent_channels (default 4 where hidden is given) and the latent_dim it makes: channels x the code
        map's size."""
        if self.latent_channels is None:
            object.__setattr__(self, "latent_channels", 4)
        check(self.latent_channels >= 1, f"model.latent_channels must be positive, got {self.latent_channels}")
        check(
            self.patch >= 1 and self.patch & (self.patch - 1) == 0,
            f"model.patch must be a power of 2 (1, 2, 4, ...), got {self.patch}",
        )
        h, w = self.code_size(*self.input_shape[1:])
        size = self.latent_channels * h * w
        check(
            self.latent_dim in (None, size),
            f"model.latent_dim {self.latent_dim}: a resnet's code is latent_channels x {h} x {w} = {size} numbers "
            "here; set latent_channels instead",
        )
        object.__setattr__(self, "latent_dim", size)
