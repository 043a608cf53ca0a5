"""The autoencoder types by name: a new type is one new file whose class registers itself here (register_model);
importing aekit.models registers the built-in ones before anything here is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..config import from_dict
from ..errors import AekitError
from ..limits import allowed_bytes, check_load_size

_MODELS: dict[str, type] = {}


def register_model(name: str):
    """Class decorator: make the Autoencoder subclass available as `name`."""

    def add(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return add


def list_models() -> list[str]:
    """Names of the available autoencoder types."""
    return sorted(_MODELS)


def get_model_class(name: str) -> type:
    """The class registered as name; AekitError if there is none."""
    if name not in _MODELS:
        raise AekitError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))} (see: aekit models)")
    return _MODELS[name]


def create_model(name: str, input_shape: tuple[int, ...] | list[int], **options: Any):
    """Build the autoencoder `name` for items of input_shape ((C, H, W) or (D,)) with its options.

    Example: create_model("ae", (1, 28, 28), hidden=(128, 64), latent_dim=32).
    """
    return model_from_config({"name": name, "input_shape": list(input_shape), **options})


def model_from_config(config: Mapping[str, Any], where: str = "model"):
    """Build a model from the "model" section of a run's config ({"name": ..., options...}).

    Its size is worked out first on the meta device (no memory): a model whose weights do not fit the
    load limit is refused in one line naming `where`, before anything is allocated.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise AekitError(f'{where}: the model config must name the model type, e.g. {{"name": "ae", ...}}')
    cls = get_model_class(config["name"])
    options = from_dict(cls.Config, {k: v for k, v in config.items() if k != "name"}, "model")
    try:
        with torch.device("meta"):
            sized = cls(options)
    except AekitError:
        raise
    except (RuntimeError, OverflowError, ValueError, MemoryError) as e:
        raise AekitError(f"{where}: the {cls.name} model of these sizes cannot be built ({str(e)[:120]})") from None
    n = sum(t.numel() for t in (*sized.parameters(), *sized.buffers()))
    check_load_size(
        4 * n, where, f"the {cls.name} model of {n:,} weights", f"; at most {allowed_bytes() // 4:,} weights fit"
    )
    return cls(options)
