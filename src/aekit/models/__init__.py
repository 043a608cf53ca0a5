"""Autoencoder types. Importing this package registers each one (see aekit.registry)."""

from . import denoising, sparse, vanilla, variational  # noqa: F401  (each registers its type)
from .base import Autoencoder, ModelConfig, Output

__all__ = ["Autoencoder", "ModelConfig", "Output"]
