"""The interface every autoencoder type implements, and the options they share."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import AekitError, check
from ..limits import INFERENCE_BATCH
from ..metrics import squared_errors
from ..progress import chunks
from .layers import ACTIVATIONS, BACKBONES, DEFAULT_HIDDEN, RESNET_DEFAULTS, build_decoder, build_encoder, code_size

REFINE_BATCH = 64  # items whose codes are fitted at once (refine_codes keeps their activations for backward)
MAX_REFINE_STEPS = 100_000  # Adam settles in hundreds of steps; each is a backward pass
RESNET_TRAINING = {"batch_size": 16, "lr": 2e-3, "schedule": "cosine"}  # ModelConfig.train_defaults
REFINE_LR = 0.03  # Adam's step size when codes are fitted to items (refine_codes), chosen on validation photos


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
        check(
            self.activation in ACTIVATIONS,
            f"model.activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
        )
        check(
            self.latent_activation == "none" or self.latent_activation in ACTIVATIONS,
            f"model.latent_activation must be none or one of {', '.join(ACTIVATIONS)}, got {self.latent_activation!r}",
        )

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


@dataclass(frozen=True)
class Capabilities:
    """What a model can do beyond encode, decode and reconstruct: declared by its type (Autoencoder.capabilities)
    and asked by the uses, the trainer and the report, so that a type registered from outside aekit gets every
    use and figure it declares.

    samples: sample(n, temperature, generator) draws new items from a prior (generate; the samples figure).
    likelihood: nll(x, k) bounds each item's negative log-likelihood in nats (evaluate --nll-k).
    compressor: codes with its own entropy model, model.entropy (compress writes .aez versions 2 to 4; --refine).
    decodes_codes: the code alone rebuilds an item (not so for a dae with U-Net skips): compress, generate and the
        encoder and decoder exports need it.
    channels_last: trains fastest on CUDA in the channels-last memory layout (stride-2 convolutions).
    random_scores: anomaly_scores draws random numbers (a vae's negative ELBO): not exported as a scorer.
    figures: the names of the report's figures of this type (report.FIGURES; register_figure adds one).
    """

    samples: bool = False
    likelihood: bool = False
    compressor: bool = False
    decodes_codes: bool = True
    channels_last: bool = False
    random_scores: bool = False
    figures: tuple[str, ...] = ()


@dataclass
class Output:
    """What forward() returns: reconstruction (N, *input_shape), code (N, latent_dim), scalar loss, and
    logs (name -> detached scalar tensor, averaged over an epoch by the trainer)."""

    x_hat: torch.Tensor
    z: torch.Tensor
    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class _SigmoidSquaredError(torch.autograd.Function):
    """sigmoid(logits) and sum((sigmoid(logits) - x)^2) as one autograd node.

    Same math as mse_loss(sigmoid(logits), x, reduction="sum"); the backward is one fused
    sigmoid_backward instead of autograd's chain, which is measurable for small models on a CPU.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor):
        x_hat = torch.sigmoid(logits)
        diff = x_hat - x
        ctx.save_for_backward(x_hat, diff)
        ctx.mark_non_differentiable(x_hat)
        flat = diff.reshape(-1)
        return torch.dot(flat, flat), x_hat

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _unused: torch.Tensor):
        x_hat, diff = ctx.saved_tensors
        scaled = diff * (2 * grad)
        grad_x = -scaled if ctx.needs_input_grad[1] else None
        return torch.ops.aten.sigmoid_backward(scaled, x_hat), grad_x


def sigmoid_squared_error(logits: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, x_hat): x_hat = sigmoid(logits); loss = squared error summed over an item's features and
    averaged over the batch. x_hat carries no gradient (the loss does)."""
    total, x_hat = _SigmoidSquaredError.apply(logits.to(x.dtype), x)  # x's precision even under bf16 autocast
    return total / x.shape[0], x_hat


def check_steps(steps: int) -> None:
    """AekitError unless steps is a step count for fitting codes (refine_codes, compress --refine): 0 to
    MAX_REFINE_STEPS."""
    check(
        isinstance(steps, int) and 0 <= steps <= MAX_REFINE_STEPS,
        f"refine steps must be a whole number from 0 to {MAX_REFINE_STEPS:,}, got {steps}",
    )


def fit_codes(
    z: torch.Tensor,
    gradient: Callable[[torch.Tensor], torch.Tensor],
    steps: int,
    lr: float = REFINE_LR,
    what: str | None = None,
) -> torch.Tensor:
    """Codes z after steps of Adam (step size lr) down an error whose gradient with respect to the codes is
    gradient(z) (z requires grad while it is called): what refining codes means, for items and whole images.
    what: shows the steps' progress so named (progress.chunks)."""
    z = z.detach().clone()
    if not steps:
        return z
    z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in chunks(steps, 1, what):
            z.grad = gradient(z)
            optimizer.step()
    return z.detach()


class Autoencoder(nn.Module):
    """Base class: an encoder to a latent code and a decoder back, both built from the config.

    Inputs are float tensors (N, C, H, W) or (N, D) with values in [0, 1]; decode() returns values in
    (0, 1) through a sigmoid. Subclasses set Config and implement forward() with their own loss.
    """

    Config = ModelConfig
    name = "base"  # set by @register_model

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config, self.code_features())
        self.decoder = build_decoder(config)

    @property
    def device(self) -> torch.device:
        """Where the weights are (a run trained on a GPU keeps its model there); the uses of a model send their
        batches there and bring the results back to the CPU."""
        return next(self.parameters()).device

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do (see Capabilities); a type declares its own, from its config where they depend
        on it."""
        return Capabilities(channels_last=self.config.backbone == "conv")

    def training_notes(self, steps: int) -> list[str]:
        """What a person should know before a run of this many optimizer steps starts (Trainer.notes): a
        setting of this type the run is too short for; none by default."""
        return []

    @property
    def least_code_values(self) -> int:
        """The fewest values a code (a resnet's map over an image of any size) may have: 1, more where the code
        keeps a fixed number of them (a top-k sparse code)."""
        return 1

    def code_features(self) -> int:
        """Width of the encoder's output (the VAE needs two numbers per latent unit)."""
        return self.config.latent_dim

    def check_input(self, x: torch.Tensor) -> None:
        """AekitError unless x is a float batch of this model's input shape."""
        shape = tuple(self.config.input_shape)
        if not (isinstance(x, torch.Tensor) and x.dim() == len(shape) + 1 and tuple(x.shape[1:]) == shape):
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise AekitError(f"expected input of shape (N, {', '.join(map(str, shape))}), got {got}")
        check(x.is_floating_point(), f"expected a float tensor with values in [0, 1], got {x.dtype}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *input_shape) -> (N, latent_dim) code; outside training (eval mode) without gradients."""
        return self.code_of(self.encoder_output(x))

    def encoder_output(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder makes of x (N, *input_shape): (N, code_features()), checked, without gradients outside
        training."""
        self.check_input(x)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            return self.encoder(x)

    def code_of(self, h: torch.Tensor) -> torch.Tensor:
        """The code from the encoder's output h: (N, code_features()), or a resnet's map (N, channels, h, w) of any
        size (aekit.export); each type's own step (rounding, sparsity, the posterior's mean); h itself here."""
        return h

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, *input_shape) pre-sigmoid outputs."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, *input_shape) reconstruction in (0, 1); outside training without gradients."""
        check(
            z.dim() == 2 and z.shape[1] == self.config.latent_dim,
            f"expected codes of shape (N, {self.config.latent_dim}), got {list(z.shape)}",
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            return torch.sigmoid(self.decode_logits(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
        """decode(encode(x)) without gradients, in batches."""
        return torch.cat([self.decode(self.encode(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])

    def check_refine(self, steps: int) -> None:
        """AekitError unless refine_codes can take this many steps on this model."""
        check_steps(steps)
        check(
            not steps or self.capabilities.decodes_codes,
            "refining codes needs a model whose code alone rebuilds an item",
        )

    def refine_codes(
        self, x: torch.Tensor, steps: int, lr: float = REFINE_LR, batch_size: int = REFINE_BATCH
    ) -> torch.Tensor:
        """Codes (N, latent_dim) fitted to x: the encoder's codes, then `steps` steps of Adam (step size lr) on the
        squared reconstruction error with the decoder's weights fixed. An encoder trained over many items is
        never quite the best code for each one; these are better codes of the same size, which the same decoder
        (decode, a decompressor) turns into closer reconstructions. The work is steps backward passes through
        the decoder; the model is not changed."""
        self.check_refine(steps)
        if len(x) > batch_size:  # each item's code is fitted on its own: batches change nothing but memory
            return torch.cat([self.refine_codes(xb, steps, lr, batch_size) for xb in x.split(batch_size)])
        with torch.no_grad():
            z = self.encode(x)

        def gradient(z: torch.Tensor) -> torch.Tensor:
            loss = sigmoid_squared_error(self.decode_logits(z), x)[0]
            return torch.autograd.grad(loss, [z])[0]  # the weights' gradients are never computed

        return fit_codes(z, gradient, steps, lr, f"fitting the codes of {len(x)} items")

    @torch.no_grad()
    def anomaly_scores(self, x: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
        """How unusual each item is, (N,) float64, higher is more unusual: the squared reconstruction error
        summed over the item's features."""
        return torch.cat([squared_errors(xb, self.reconstruct(xb)) for xb in x.split(batch_size)])

    def start(self, x: torch.Tensor) -> None:
        """Called by the trainer once before a new run's first step (not on resume) with training items x (the
        first ones, as a step sees them; trainer.START_ITEMS at most): a start from the data; nothing by default."""

    def after_epoch(self) -> None:
        """Called by the trainer after each epoch, before the run is saved: state derived from the weights is
        brought up to date here (a compressor's integer coding tables); nothing by default."""

    def extra_metrics(self, x: torch.Tensor, **options) -> dict[str, float]:
        """Metrics of this type over a whole evaluation set x (beyond the averaged logs); none by default."""
        return {}

    def forward(self, x: torch.Tensor) -> Output:  # pragma: no cover - every registered type overrides it
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
