"""Encoder and decoder builders shared by every autoencoder type: an MLP, a convolutional backbone, and a fully
convolutional residual one (resnet) whose code is a spatial map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOGIT_CLIP = 0.02  # start_from_pca: pixels clipped to [this, 1 - this] before their logits are fitted
WEIGHTED_CLIP = 0.002  # the same for its weighted fit: about half a level of 255
PIXEL_EPS = 1e-4  # pixel_logits: pixels clamped to [this, 1 - this], whose logits are finite
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def mlp(sizes: list[int], activation: str, last_activation: str | None) -> nn.Sequential:
    """Linear layers between consecutive sizes, `activation` between them, `last_activation` at the end."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        act = activation if i < len(sizes) - 2 else last_activation
        if act is not None:
            layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


def _code_activation(config) -> str | None:
    return None if config.latent_activation == "none" else config.latent_activation


def mlp_encoder(config, out_features: int) -> nn.Module:
    """x (N, *input_shape) -> (N, out_features): flatten, then the hidden layers (a conditional model's input is the
    flattened item with its label's one-hot numbers after it, (N, D + classes))."""
    d_in = math.prod(config.input_shape) + config.classes
    return nn.Sequential(
        nn.Flatten(), mlp([d_in, *config.hidden, out_features], config.activation, _code_activation(config))
    )


def mlp_decoder(config) -> nn.Module:
    """z (N, latent_dim + classes) -> logits (N, *input_shape): the hidden layers mirrored, no output activation (a
    conditional model's code has its label's one-hot numbers after it)."""
    d_in = math.prod(config.input_shape)
    body = mlp([config.latent_dim + config.classes, *reversed(config.hidden), d_in], config.activation, None)
    return nn.Sequential(body, nn.Unflatten(1, tuple(config.input_shape)))


def conv_sizes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Spatial sizes before each stride-2 stage and after the last: 28x28, 3 stages -> 28, 14, 7, 4."""
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def conv_encoder(config, out_features: int) -> nn.Module:
    """x (N, C, H, W) -> (N, out_features): a stride-2 3x3 convolution per entry of `hidden` (its channel
    count), each halving the size (rounding up), then a linear layer from the flattened map to the code (a
    conditional model's input has a constant plane per class after the image's channels, (N, C + classes, H, W),
    its label's one-hot numbers)."""
    c, h, w = config.input_shape
    c += config.classes
    act = ACTIVATIONS[config.activation]
    layers: list[nn.Module] = []
    for width in config.hidden:
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), act()]
        c = width
    h_last, w_last = conv_sizes(h, w, len(config.hidden))[-1]
    layers += [nn.Flatten(), nn.Linear(c * h_last * w_last, out_features)]
    if _code_activation(config):
        layers.append(ACTIVATIONS[_code_activation(config)]())
    return nn.Sequential(*layers)


def conv_decoder(config) -> nn.Module:
    """z (N, latent_dim + classes) -> logits (N, C, H, W): the encoder mirrored with stride-2 transposed convolutions
    whose output padding lands exactly on each of the encoder's sizes, odd or even."""
    c_img, h, w = config.input_shape
    widths = list(config.hidden)
    sizes = conv_sizes(h, w, len(widths))
    act = ACTIVATIONS[config.activation]
    h_last, w_last = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(config.latent_dim + config.classes, widths[-1] * h_last * w_last),
        act(),
        nn.Unflatten(1, (widths[-1], h_last, w_last)),
    ]
    for i in reversed(range(len(widths))):
        target_h, target_w = sizes[i]
        c_out = widths[i - 1] if i > 0 else c_img
        pad = (1 - target_h % 2, 1 - target_w % 2)  # (n - 1) * 2 - 2 + 3 + pad == target
        layers.append(nn.ConvTranspose2d(widths[i], c_out, 3, stride=2, padding=1, output_padding=pad))
        if i > 0:
            layers.append(act())
    return nn.Sequential(*layers)


def code_size(height: int, width: int, stages: int) -> tuple[int, int]:
    """The resnet code's spatial size: the image padded up to a multiple of 2**stages, divided by it."""
    return -(-height // 2**stages), -(-width // 2**stages)


# A resnet over an image holds float32 maps of its widest stage's channels at the size the stages see (the padded
# image's over patch^2): this many alive at once, a bound from the peak memory of a 1408x1408 photo through a
# compressor with patch 4 and a stage of 96 channels (245 MB coding it, 5 such maps; 1.1 GB fitting its code,
# the activations kept for the backward passes, 23 maps).
FORWARD_MAPS = 8
BACKWARD_MAPS = 32


def activation_bytes(config, batch: int, height: int, width: int, backward: bool = False) -> int:
    """The memory a resnet's activations take over a batch of images of (height, width) (kept for a backward pass
    too, with backward): its widest stage's maps at the padded size, and the padded image's copies."""
    block = 2**config.stages
    h, w = code_size(height, width, config.stages)
    pixels = h * w * block * block
    maps = BACKWARD_MAPS if backward else FORWARD_MAPS
    return batch * 4 * pixels * (maps * max(config.hidden) // config.patch**2 + 3 * config.input_shape[0])


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm without F.group_norm's refusal of a single value per group in a batch of one ("Expected more
    than 1 value per channel when training"): a guard for batch statistics, which GroupNorm does not use. Each
    image is normalised on its own, so a code map of one position (an image of a few pixels, coded whole) with a
    channel a group gives the layer's bias there, as it does in a training batch of any size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def _norm(channels: int) -> GroupNorm:
    """GroupNorm in groups of up to 32. (A per-position norm, which would make every code position depend only
    on its surroundings at any size, was tried on digits: the sparse and variational types then barely learned;
    whole-image inference on tiles the size of the training crops keeps GroupNorm's statistics close.)"""
    return GroupNorm(math.gcd(32, channels), channels)


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))): two 3x3 convolutions, pre-activation, the same channels."""

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(
            _norm(channels), act(), nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels), act(), nn.Conv2d(channels, channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetEncoder(nn.Module):
    """x (N, C, H, W) -> a code map (N, out_channels, H/2^s, W/2^s), flattened to (N, out_channels*h*w).

    With patch > 1 the image is first cut into patch x patch cells (pixel unshuffle). A 3x3 stem to hidden[0]
    channels, then per entry of hidden a residual block and a stride-2 3x3 convolution
    to the next width, a last residual block and a 1x1 convolution to the code (s = config.stages halvings in
    all). Beside them a linear path: each 2^s x 2^s block of pixels mapped linearly to its position of the code (what
    block-wise PCA does), added to the residual stages' output, so that the code starts from a linear transform
    the stages refine. Sizes that are not multiples of 2^s are reflection-padded first (the decoder crops back)."""

    def __init__(self, config, out_channels: int) -> None:
        super().__init__()
        widths, act, patch = list(config.hidden), config.activation, config.patch
        layers: list[nn.Module] = [nn.PixelUnshuffle(patch)] if patch > 1 else []
        layers.append(nn.Conv2d(config.input_shape[0] * patch**2, widths[0], 3, padding=1))
        self.downs = []  # where the stride-2 convolutions are: the stage features before them are the skips
        for i, width in enumerate(widths):
            nxt = widths[min(i + 1, len(widths) - 1)]
            self.downs.append(len(layers) + 1)
            layers += [ResBlock(width, act), nn.Conv2d(width, nxt, 3, stride=2, padding=1)]
        layers += [
            ResBlock(widths[-1], act),
            _norm(widths[-1]),
            ACTIVATIONS[act](),
            nn.Conv2d(widths[-1], out_channels, 1),
        ]
        self.body = nn.Sequential(*layers)
        self.stages = config.stages
        block = 2**self.stages
        self.linear = nn.Conv2d(config.input_shape[0], out_channels, block, stride=block)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor] | None = None, flat: bool = True) -> torch.Tensor:
        """The code (N, out_channels*h*w), or with flat False the map (N, out_channels, h, w); with a list as
        skips, each stage's features are appended to it (at H/2^i, for the decoder's U-Net skips)."""
        x = pad_to_stages(x, self.stages)
        h = x
        for i, layer in enumerate(self.body):
            if skips is not None and i in self.downs:
                skips.append(h)
            h = layer(h)
        h = h + self.linear(x)
        return h.flatten(1) if flat else h


def pad_to_stages(x: torch.Tensor, stages: int) -> torch.Tensor:
    """x (..., H, W) padded at the bottom and right to a multiple of 2**stages: by reflection, or by repeating the
    edge where a side is too short to reflect. One graph for every size from one pixel up (aekit.export): the
    padded size is computed as a value (the exporter need not prove it a multiple of 2**stages), the rows and
    columns gathered by index."""
    block = 2**stages
    h, w = x.shape[-2:]
    if not torch.compiler.is_exporting():
        hp, wp = code_size(h, w, stages)
        if (hp * block, wp * block) == (h, w):
            return x
        reflect = hp * block - h < h and wp * block - w < w
        return x[..., _padded(h, hp * block, reflect, x.device), :][..., _padded(w, wp * block, reflect, x.device)]
    hp, wp = (
        torch.scalar_tensor(n, dtype=torch.int64).add(block - 1).div(block, rounding_mode="floor") for n in (h, w)
    )
    reflect = (hp * block - h < h) & (wp * block - w < w)
    hp, wp = hp.item(), wp.item()
    for positions, n in ((hp, h), (wp, w)):
        torch._check_is_size(positions)
        torch._check(positions >= 1)
        torch._check(positions * block >= n)
    rows, cols = _padded(h, hp * block, reflect, x.device), _padded(w, wp * block, reflect, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _padded(n: int, size: int, reflect, device: torch.device) -> torch.Tensor:
    """Indices 0..size-1 into a side of n values: reflected at its end (0 1 2 1 0 for n = 3, size = 5) where
    reflect, else the last one repeated (0 1 2 2 2). reflect may be a tensor (the exported graph's choice)."""
    n = torch.scalar_tensor(n, dtype=torch.int64, device=device)  # a tensor: n may be symbolic (export)
    i = torch.arange(size, device=device)
    return torch.where(
        torch.as_tensor(reflect, device=device), torch.where(i < n, i, 2 * n - 2 - i), i.clamp(max=n - 1)
    )


class ResnetDecoder(nn.Module):
    """A code (N, latent_channels*h*w) -> logits (N, C, H, W): the encoder mirrored, each stage upsampling by
    nearest-neighbour resize and a 3x3 convolution (no transposed convolution: no checkerboard), the last one
    to patch x patch cells (pixel shuffle) where the encoder cut them, plus the
    encoder's linear path mirrored (each code position to its 2^s x 2^s block of pixels: a 1x1 convolution and
    a pixel shuffle), then cropped to the input's size."""

    def __init__(self, config) -> None:
        super().__init__()
        c_img, self.height, self.width = config.input_shape
        widths, act = list(config.hidden), config.activation
        self.code_shape = (config.latent_channels, *config.code_size(self.height, self.width))
        layers: list[nn.Module] = [
            nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1),
            ResBlock(widths[-1], act),
        ]
        self.ups = []  # where each upsampling's convolution is: the skips of its size are added after it
        for i in reversed(range(len(widths))):
            prev = widths[min(i + 1, len(widths) - 1)]
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, widths[i], 3, padding=1)]
            self.ups.append(len(layers) - 1)
            layers.append(ResBlock(widths[i], act))
        layers += [_norm(widths[0]), ACTIVATIONS[act](), nn.Conv2d(widths[0], c_img * config.patch**2, 3, padding=1)]
        if config.patch > 1:
            layers.append(nn.PixelShuffle(config.patch))
        self.body = nn.Sequential(*layers)
        block = 2**config.stages
        self.linear = nn.Sequential(nn.Conv2d(config.latent_channels, c_img * block**2, 1), nn.PixelShuffle(block))
        if getattr(config, "skips", False):  # U-Net skips: each encoder stage's features into the decoder's
            self.skips = nn.ModuleList(nn.Conv2d(w, w, 1) for w in reversed(widths))
        self.pixels = bool(config.pixel_output)  # the sum stands for pixels, not logits

    def forward(
        self, z: torch.Tensor, skips: list[torch.Tensor] | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Logits from the code; skips (the encoder's stage features, see ResnetEncoder) are added, through a 1x1
        convolution each, after each upsampling to their size. z may also be a code map (N, latent_channels, h, w)
        of any size, decoded to (N, C, *size) (without size: h and w times 2^s): an image of any size."""
        if z.dim() == 2:
            z, size = z.unflatten(1, self.code_shape), size or (self.height, self.width)
        height, width = size or (None, None)
        h, added = z, dict(zip(self.ups, zip(self.skips, reversed(skips), strict=True), strict=True)) if skips else {}
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i in added:
                projection, features = added[i]
                h = h + projection(features)
        out = (h + self.linear(z))[..., :height, :width]
        return pixel_logits(out) if self.pixels else out


def pixel_logits(u: torch.Tensor) -> torch.Tensor:
    """The logits of pixel values u (any shape), so that a sigmoid gives u back: u clamped to [PIXEL_EPS,
    1 - PIXEL_EPS] going forward and left as it is going back (a straight-through clamp), so that a value
    pushed past [0, 1] is still pulled back by its error instead of losing its gradient."""
    return torch.logit(u + (u.clamp(PIXEL_EPS, 1 - PIXEL_EPS) - u).detach())


@torch.no_grad()
def start_from_pca(
    encoder: ResnetEncoder, decoder: ResnetDecoder, x: torch.Tensor, step: float, weighted: bool = False
) -> None:
    """Start a resnet as a block transform coder: its linear paths from PCA of x's blocks (items (N, C, H, W) in
    [0, 1], padded as the encoder pads them), the residual stages' last convolutions at zero. The encoder's path
    gives each block's first latent_channels principal components divided by step (rounding them is uniform
    quantization with that step); the decoder's path is the least-squares map from those coefficients to the
    blocks' logits (the decoder ends in a sigmoid), with pixels clipped to [LOGIT_CLIP, 1 - LOGIT_CLIP].
    weighted: fit the pixels' first-order error instead (each logit error weighted by the sigmoid's slope at its
    pixel, pixels clipped to [WEIGHTED_CLIP, 1 - WEIGHTED_CLIP]), which puts the fit where pixel errors are, in
    the mid-tones (pixels near black or white weigh little): the start of a plain ae or dae, which ended closer to
    block PCA on validation photos after training (docs/benchmarks.md, "Photos with the defaults"); a compressor
    keeps the unweighted fit that its measured figures were made with. A decoder of pixels (pixel_output)
    gets PCA's own map back to the blocks instead: the start is block PCA exactly, whatever weighted says."""
    linear, back = encoder.linear, decoder.linear[0]
    channels, c_in, block, _ = linear.weight.shape
    blocks = F.unfold(pad_to_stages(x, encoder.stages).cpu().double(), block, stride=block)  # CPU: any rank
    blocks = blocks.transpose(1, 2).reshape(-1, c_in * block * block)
    mean = blocks.mean(0)
    basis = torch.linalg.svd(blocks - mean, full_matrices=False).Vh[:channels] / step
    basis = torch.cat([basis, basis.new_zeros(channels - len(basis), basis.shape[1])])  # more channels than values
    coefficients = (blocks - mean) @ basis.T
    design = F.pad(coefficients, (0, 1), value=1.0)  # (B, channels + 1): the coefficients and a 1 for the bias
    if decoder.pixels:  # coefficients c = (x - mean) V^T / step give back mean + c (step V) = mean + (x - mean) V^T V
        fit = torch.cat([basis * step**2, mean[None]])  # (channels + 1, values)
    elif not weighted:
        target = torch.logit(blocks.clamp(LOGIT_CLIP, 1 - LOGIT_CLIP))
        fit = torch.linalg.lstsq(design, target).solution  # (channels + 1, values)
    else:  # each value's own least squares, logit errors weighted by the sigmoid's slope p (1 - p) at the pixel
        pixels = blocks.clamp(WEIGHTED_CLIP, 1 - WEIGHTED_CLIP)
        target, slope = torch.logit(pixels), pixels * (1 - pixels)  # (B, values) each
        fit = torch.stack(
            [
                torch.linalg.lstsq(design * slope[:, v, None], target[:, v] * slope[:, v]).solution
                for v in range(target.shape[1])
            ],
            1,
        )
    linear.weight.copy_(basis.reshape(linear.weight.shape))
    linear.bias.copy_(-(basis @ mean))
    back.weight.copy_(fit[:channels].T.reshape(back.weight.shape))
    back.bias.copy_(fit[channels])
    for conv in (encoder.body[-1], [m for m in decoder.body if isinstance(m, nn.Conv2d)][-1]):
        nn.init.zeros_(conv.weight), nn.init.zeros_(conv.bias)


def resnet_encoder(config, out_features: int) -> nn.Module:
    h, w = config.code_size(*config.input_shape[1:])
    return ResnetEncoder(config, out_features // (h * w))  # the VAE asks for two maps: mean and log-variance


BACKBONES = {
    "mlp": (mlp_encoder, mlp_decoder),
    "conv": (conv_encoder, conv_decoder),
    "resnet": (resnet_encoder, ResnetDecoder),
}
DEFAULT_HIDDEN = {"mlp": (128, 64), "conv": (32, 64, 128), "resnet": (32, 64)}
# The resnet where its sizes are left out: one stage of 96 channels on 4x4 cells of pixels and 16 code channels,
# so the code is one position per 8x8 block of pixels with 16 numbers (1/12 of an RGB image's), a decoder of pixels
# (ModelConfig.pixel_output), and the linear path starts as 8x8 block PCA exactly (start_from_pca); about 16 times
# fewer operations than (32, 64) at full size (docs/benchmarks.md, "Photos with the defaults").
RESNET_DEFAULTS = {"hidden": (96,), "patch": 4, "latent_channels": 16}


def build_encoder(config, out_features: int) -> nn.Module:
    return BACKBONES[config.backbone][0](config, out_features)


def build_decoder(config) -> nn.Module:
    return BACKBONES[config.backbone][1](config)
