"""aekit: the classic autoencoder family, trained for real on your data.

import aekit
run = aekit.train("mnist", model="ae", epochs=20, out="runs/classic")
model = aekit.load("runs/classic")          # eval mode, never unpickles
z = model.encode(x)                          # x: (N, 1, 28, 28) floats in [0, 1]
x_hat = model.decode(z)

Data: aekit.data (load, info, registries). Uses of a trained run: reconstruct, compress/decompress, denoise,
features, generate/interpolate/manifold, anomaly_scores, anomaly_maps, evaluate, reconstruction_figure;
scikit-learn estimators: AutoencoderTransformer, AutoencoderDetector.

Importing the package is cheap: each public name loads its module (and PyTorch) when first used, so that
the `aekit` command handles everything from its first instant (a Ctrl-C during start-up included).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {  # name -> (module, attribute); None: the module itself
    "AekitError": ("errors", "AekitError"),
    "AutoencoderDetector": ("sklearn", "AutoencoderDetector"),
    "AutoencoderTransformer": ("sklearn", "AutoencoderTransformer"),
    "Run": ("run", "Run"),
    "Trainer": ("trainer", "Trainer"),
    "anomaly_maps": ("apps.anomaly", "maps"),
    "anomaly_scores": ("apps.anomaly", "scores"),
    "compress": ("apps.compress", "compress"),
    "create_model": ("models.types", "create_model"),
    "data": ("data", None),
    "datasets": ("data", None),  # the old name of aekit.data
    "decompress": ("apps.compress", "decompress"),
    "denoise": ("apps.denoise", "denoise"),
    "evaluate": ("_evaluate", "evaluate"),
    "export": ("_export", "export"),
    "features": ("apps.features", "features"),
    "generate": ("apps.generate", "generate"),
    "interpolate": ("apps.generate", "interpolate"),
    "list_models": ("models.types", "list_models"),
    "load": ("run", "load"),
    "manifold": ("apps.generate", "manifold"),
    "reconstruct": ("apps.denoise", "reconstruct"),
    "reconstruction_figure": ("_evaluate", "reconstruction_figure"),
    "register_figure": ("_report", "register_figure"),
    "register_model": ("models.types", "register_model"),
    "report": ("_report", "report"),
    "train": ("_train", "train"),
}
__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aekit' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(f".{module}", __name__)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
