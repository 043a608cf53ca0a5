"""Autoencoder types, one file each. Importing this package registers each one (aekit.models.types)."""

from . import denoising, sparse, vanilla, variational  # noqa: F401  (each registers its type)
from .base import Autoencoder, ModelConfig, Output
from .types import create_model, get_model_class, list_models, model_from_config, register_model

__all__ = [
    "Autoencoder",
    "ModelConfig",
    "Output",
    "create_model",
    "get_model_class",
    "list_models",
    "model_from_config",
    "register_model",
]
