"""Encoder and decoder builders shared by every autoencoder type."""

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


def build_encoder(config, out_features: int) -> nn.Module:
    """x (N, *input_shape) -> (N, out_features): flatten, then the hidden layers."""
    d_in = math.prod(config.input_shape)
    last = None if config.latent_activation == "none" else config.latent_activation
    return nn.Sequential(nn.Flatten(), mlp([d_in, *config.hidden, out_features], config.activation, last))


def build_decoder(config) -> nn.Module:
    """z (N, latent_dim) -> logits (N, *input_shape): the hidden layers mirrored, no output activation."""
    d_in = math.prod(config.input_shape)
    body = mlp([config.latent_dim, *reversed(config.hidden), d_in], config.activation, None)
    return nn.Sequential(body, nn.Unflatten(1, tuple(config.input_shape)))
