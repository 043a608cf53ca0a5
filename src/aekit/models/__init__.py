"""Autoencoder types. Importing this package registers each one (see aekit.registry)."""

from . import vanilla  # noqa: F401
from .base import Autoencoder, ModelConfig, Output

__all__ = ["Autoencoder", "ModelConfig", "Output"]
