"""The interface every autoencoder type implements (Autoencoder), what it declares it can do (Capabilities) and
returns (Output), and the helpers the types share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AekitError, check
from ..limits import INFERENCE_BATCH
from ..metrics import squared_errors
from ..progress import chunks
from .config import ModelConfig
from .layers import build_decoder, build_encoder

REFINE_BATCH = 64  # items whose codes are fitted at once (refine_codes keeps their activations for backward)
MAX_REFINE_STEPS = 100_000  # Adam settles in hundreds of steps; each is a backward pass
REFINE_LR = 0.03  # Adam's step size when codes are fitted to items (refine_codes), chosen on validation photos


@dataclass(frozen=True)
class Capabilities:
    """What a model can do beyond encode, decode and reconstruct: declared by its type (Autoencoder.capabilities)
    and asked by the uses, the trainer and the report, so that a type registered from outside aekit gets every
    use and figure it declares.

    samples: sample(n, temperature, generator) draws new items from a prior (generate; the samples figure); a
        conditional model's also takes labels (n,), the class of each.
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

    def check_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """A conditional model's labels for n items, (n,) long on the model's device: AekitError where they are
        missing, not n whole numbers from 0 to classes - 1, or given to a model that is not conditional."""
        c = self.config
        if not c.conditional:
            check(labels is None, f"this {self.name} model is not conditional: it takes no labels")
            return None
        check(
            labels is not None,
            f"this {self.name} model is conditional: it needs each item's label, which generate, evaluate, reconstruct "
            "and report give it (its other uses need a model trained without --conditional)",
        )
        labels = torch.as_tensor(labels)
        check(
            labels.shape == (n,) and not labels.is_floating_point() and not labels.is_complex(),
            f"expected {n} whole-number labels, got a {labels.dtype} tensor of shape {list(labels.shape)}",
        )
        check(  # not read back in training (a sync on an accelerator): the trainer's labels are the data's
            self.training or n == 0 or 0 <= int(labels.min()) and int(labels.max()) < c.classes,
            f"labels must be from 0 to {c.classes - 1} (the classes the model was trained on)",
        )
        return labels.to(self.device, torch.long)

    def labels_for(self, n: int, label: int | None = None) -> torch.Tensor | None:
        """Labels (n,) for n new items of a conditional model: each `label`, else the classes in turn (a grid of
        `classes` columns shows a class a column); None for a model that is not conditional."""
        c = self.config
        if not c.conditional:
            check(label is None, f"--label: this {self.name} model is not conditional (train it with --conditional)")
            return None
        if label is None:
            return torch.arange(n) % c.classes
        check(
            isinstance(label, int) and 0 <= label < c.classes,
            f"--label {label}: the model was trained on labels 0 to {c.classes - 1}",
        )
        return torch.full((n,), label)

    @torch.no_grad()
    def sample_grid(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """(at most n items (N, *input_shape) from the prior (sample), the columns of the grid that shows them): 8
        columns, or for a conditional model a class a column, n rounded down to whole rows of its classes."""
        columns = self.config.classes or 8
        n -= n % columns if self.config.conditional else 0
        labels = self.labels_for(n)
        given = {} if labels is None else {"labels": labels}  # a type's sample takes labels where it is conditional
        return self.sample(n, generator=generator, **given), columns

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(N, *input_shape) -> (N, latent_dim) code; outside training (eval mode) without gradients. labels (N,):
        a conditional model's classes of the items."""
        return self.code_of(self.encoder_output(x, labels))

    def encoder_output(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """What the encoder makes of x (N, *input_shape) (and of a conditional model's labels (N,)):
        (N, code_features()), checked, without gradients outside training."""
        self.check_input(x)
        labels = self.check_labels(labels, x.shape[0])
        if labels is not None:  # the label's one-hot numbers after the item's (layers.mlp_encoder, conv_encoder)
            one_hot = F.one_hot(labels, self.config.classes).to(x.dtype)  # (N, classes)
            if self.config.backbone == "mlp":
                x = torch.cat([x.flatten(1), one_hot], 1)  # (N, D + classes): the encoder's Flatten keeps it
            else:
                x = torch.cat([x, one_hot[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)  # (N, C + classes, H, W)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            return self.encoder(x)

    def code_of(self, h: torch.Tensor) -> torch.Tensor:
        """The code from the encoder's output h: (N, code_features()), or a resnet's map (N, channels, h, w) of any
        size (aekit.export); each type's own step (rounding, sparsity, the posterior's mean); h itself here."""
        return h

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(N, latent_dim) -> (N, *input_shape) pre-sigmoid outputs; a conditional model's labels (N,) go in beside
        the code as one-hot numbers."""
        labels = self.check_labels(labels, z.shape[0])
        if labels is not None:
            z = torch.cat([z, F.one_hot(labels, self.config.classes).to(z.dtype)], 1)  # (N, latent_dim + classes)
        return self.decoder(z)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(N, latent_dim) -> (N, *input_shape) reconstruction in (0, 1); outside training without gradients."""
        check(
            z.dim() == 2 and z.shape[1] == self.config.latent_dim,
            f"expected codes of shape (N, {self.config.latent_dim}), got {list(z.shape)}",
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            return torch.sigmoid(self.decode_logits(z, labels))

    @torch.no_grad()
    def reconstruct(
        self, x: torch.Tensor, batch_size: int = INFERENCE_BATCH, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """decode(encode(x)) without gradients, in batches (with a conditional model's labels (N,))."""
        parts = [slice(i, i + batch_size) for i in range(0, len(x), batch_size)]
        if labels is None:
            return torch.cat([self.decode(self.encode(x[part])) for part in parts])
        return torch.cat([self.decode(self.encode(x[p], labels[p]), labels[p]) for p in parts])

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
