"""Encoder and decoder builders shared by every autoencoder type: an MLP and a convolutional backbone."""

from __future__ import annotations

import math

from torch import nn

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
    """x (N, *input_shape) -> (N, out_features): flatten, then the hidden layers."""
    d_in = math.prod(config.input_shape)
    return nn.Sequential(
        nn.Flatten(), mlp([d_in, *config.hidden, out_features], config.activation, _code_activation(config))
    )


def mlp_decoder(config) -> nn.Module:
    """z (N, latent_dim) -> logits (N, *input_shape): the hidden layers mirrored, no output activation."""
    d_in = math.prod(config.input_shape)
    body = mlp([config.latent_dim, *reversed(config.hidden), d_in], config.activation, None)
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
    count), each halving the size (rounding up), then a linear layer from the flattened map to the code."""
    c, h, w = config.input_shape
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
    """z (N, latent_dim) -> logits (N, C, H, W): the encoder mirrored with stride-2 transposed convolutions
    whose output padding lands exactly on each of the encoder's sizes, odd or even."""
    c_img, h, w = config.input_shape
    widths = list(config.hidden)
    sizes = conv_sizes(h, w, len(widths))
    act = ACTIVATIONS[config.activation]
    h_last, w_last = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(config.latent_dim, widths[-1] * h_last * w_last),
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


BACKBONES = {"mlp": (mlp_encoder, mlp_decoder), "conv": (conv_encoder, conv_decoder)}
DEFAULT_HIDDEN = {"mlp": (128, 64), "conv": (32, 64, 128)}


def build_encoder(config, out_features: int) -> nn.Module:
    return BACKBONES[config.backbone][0](config, out_features)


def build_decoder(config) -> nn.Module:
    return BACKBONES[config.backbone][1](config)
