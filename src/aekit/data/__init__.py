"""Data: built-in datasets (MNIST, scikit-learn digits) and the user's own files, in memory as tensors.

Sources are registered (aekit.data.registry): register_format for a file format, register_dataset for a
built-in dataset. One module a reader family (idx, arrays, table, images) and a built-in dataset (mnist, digits),
each registering itself when this package is imported; scaling, the dataset classes and splits apart.
"""

# registration order is the order `aekit data list` and messages name the datasets in: mnist first
# isort: off
from . import mnist, digits  # noqa: F401
from . import arrays, idx, images, table  # noqa: F401

# isort: on
from .datasets import Dataset
from .idx import read_idx
from .mnist import fetch_mnist
from .registry import BUILTINS, default_data_dir, register_dataset, register_format
from .scaling import Scaling
from .splits import Splits, info, load, load_config

__all__ = [
    "BUILTINS",
    "Dataset",
    "Scaling",
    "Splits",
    "default_data_dir",
    "fetch_mnist",
    "info",
    "load",
    "load_config",
    "read_idx",
    "register_dataset",
    "register_format",
]
