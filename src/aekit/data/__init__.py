"""Data: built-in datasets (MNIST, scikit-learn digits) and the user's own files, in memory as tensors."""

from .datasets import BUILTIN, Dataset, Scaling, Splits, info, load, load_config
from .sources import default_data_dir, fetch_mnist, read_idx

__all__ = [
    "BUILTIN",
    "Dataset",
    "Scaling",
    "Splits",
    "default_data_dir",
    "fetch_mnist",
    "info",
    "load",
    "load_config",
    "read_idx",
]
