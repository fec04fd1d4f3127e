"""Datasets and data helpers: Fashion-MNIST from local files, seeded splits, label noise, ids.

Nothing here downloads: Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``.
"""

from .fmnist import (
    DEFAULT_FMNIST_DIR,
    FASHION_MNIST_CLASSES,
    FMNIST_ENV_VAR,
    FMNIST_MEAN,
    FMNIST_STD,
    find_fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
    to_float_images,
)
from .indexed import WithIndex
from .noise import FMNIST_CONFUSABLE, NoisyLabels, asymmetric_noise, symmetric_noise
from .splits import pool_holdout_split

__all__ = [
    "DEFAULT_FMNIST_DIR",
    "FMNIST_ENV_VAR",
    "FASHION_MNIST_CLASSES",
    "FMNIST_MEAN",
    "FMNIST_STD",
    "find_fashion_mnist_dir",
    "read_idx",
    "load_fashion_mnist",
    "to_float_images",
    "pool_holdout_split",
    "NoisyLabels",
    "FMNIST_CONFUSABLE",
    "symmetric_noise",
    "asymmetric_noise",
    "WithIndex",
]
