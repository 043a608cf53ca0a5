"""aekit: the classic autoencoder family, trained for real on your data.

import aekit
run = aekit.train("mnist", model="ae", epochs=20, out="runs/classic")
model = aekit.load("runs/classic")          # eval mode, never unpickles
z = model.encode(x)                          # x: (N, 1, 28, 28) floats in [0, 1]
x_hat = model.decode(z)

Uses of a trained run: compress/decompress, denoise, features, generate/interpolate/manifold,
anomaly_scores; scikit-learn estimators: AutoencoderTransformer, AutoencoderDetector.
"""

__version__ = "0.1.0"

from . import data as datasets  # noqa: E402
from .apps.anomaly import scores as anomaly_scores  # noqa: E402
from .apps.compress import compress, decompress  # noqa: E402
from .apps.denoise import denoise  # noqa: E402
from .apps.features import features  # noqa: E402
from .apps.generate import generate, interpolate, manifold  # noqa: E402
from .errors import AekitError  # noqa: E402
from .evaluate import evaluate, reconstruct  # noqa: E402
from .registry import create_model, list_models, register_model  # noqa: E402
from .run import Run, load  # noqa: E402
from .train import Trainer, train  # noqa: E402

__all__ = [
    "AekitError",
    "AutoencoderDetector",
    "AutoencoderTransformer",
    "Run",
    "Trainer",
    "__version__",
    "anomaly_scores",
    "compress",
    "create_model",
    "datasets",
    "decompress",
    "denoise",
    "evaluate",
    "features",
    "generate",
    "interpolate",
    "list_models",
    "load",
    "manifold",
    "reconstruct",
    "register_model",
    "train",
]


def __getattr__(name: str):
    # The scikit-learn estimators load scikit-learn only when asked for.
    if name in ("AutoencoderTransformer", "AutoencoderDetector"):
        from . import sklearn

        return getattr(sklearn, name)
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")
