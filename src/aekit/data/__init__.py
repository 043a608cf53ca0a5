"""Data: built-in datasets (MNIST, scikit-learn digits) and the user's own files, in memory as tensors.

Sources are registered (aekit.data.registry): register_format for a file format, register_dataset for a
built-in dataset.
"""

from .datasets import Dataset, Scaling, Splits, info, load, load_config
from .registry import BUILTINS, register_dataset, register_format
from .sources import default_data_dir, fetch_mnist, read_idx

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
