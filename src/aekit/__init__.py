"""aekit: the classic autoencoder family, trained for real on your data.

import aekit
run = aekit.train("mnist", model="ae", epochs=20, out="runs/classic")
model = aekit.load("runs/classic")          # eval mode, never unpickles
z = model.encode(x)                          # x: (N, 1, 28, 28) floats in [0, 1]
x_hat = model.decode(z)
"""

__version__ = "0.1.0"

from . import data as datasets  # noqa: E402
from .errors import AekitError  # noqa: E402
from .evaluate import evaluate, reconstruct  # noqa: E402
from .registry import create_model, list_models, register_model  # noqa: E402
from .run import Run, load  # noqa: E402
from .train import Trainer, train  # noqa: E402

__all__ = [
    "AekitError",
    "Run",
    "Trainer",
    "__version__",
    "create_model",
    "datasets",
    "evaluate",
    "list_models",
    "load",
    "reconstruct",
    "register_model",
    "train",
]
