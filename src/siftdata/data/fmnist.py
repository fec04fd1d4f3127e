"""Fashion-MNIST from local IDX files (Debian package ``dataset-fashion-mnist``); never downloads.

The files are looked up in an explicit ``root``, then ``$SIFTDATA_FMNIST_DIR``, then
:data:`DEFAULT_FMNIST_DIR`. Each may hold the gzipped (``*.gz``) or the uncompressed IDX files.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._dirs import choose_data_dir

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
]

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where ``sudo apt-get install dataset-fashion-mnist`` puts the files."""

FMNIST_ENV_VAR = "SIFTDATA_FMNIST_DIR"
"""Environment variable naming a directory with the four Fashion-MNIST files."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The ten class names, in label order (label ``i`` is ``FASHION_MNIST_CLASSES[i]``)."""

FMNIST_MEAN = 0.2860
"""Mean pixel value of the training images after scaling to [0, 1]."""

FMNIST_STD = 0.3530
"""Standard deviation of the training pixels after scaling to [0, 1]."""

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_INSTALL_HINT = (
    "Install it with: sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist "
    f"(or set {FMNIST_ENV_VAR} to a directory holding the IDX files, or pass root=...)"
)
_UBYTE = 0x08


def _file_in(directory: Path, stem: str) -> Path | None:
    """The gzipped or plain file ``stem`` in ``directory``, preferring ``.gz``; None if absent."""
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _missing_files(directory: Path) -> list[str]:
    stems = [stem for pair in _FILES.values() for stem in pair]
    return [stem for stem in stems if _file_in(directory, stem) is None]


def find_fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """Find the directory holding the four Fashion-MNIST IDX files.

    Parameters
    ----------
    root : path-like or None, default None
        Directory to use. When given, it must hold the files; the other places are not tried.

    Returns
    -------
    pathlib.Path
        ``root`` if given, else ``$SIFTDATA_FMNIST_DIR`` if set, else :data:`DEFAULT_FMNIST_DIR`.

    Raises
    ------
    FileNotFoundError
        If the chosen directory lacks any of the files; the message says how to install them.
    """
    candidate, origin = choose_data_dir(root, FMNIST_ENV_VAR, DEFAULT_FMNIST_DIR)
    missing = _missing_files(candidate)
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found: {origin} {str(candidate)!r} lacks "
            f"{', '.join(missing)} (.gz or uncompressed). {_INSTALL_HINT}"
        )
    return candidate


def _read_bytes(path: Path) -> bytearray:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return bytearray(raw)
    try:
        return bytearray(gzip.decompress(raw))
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (gzipped or plain) holding unsigned bytes.

    The format is a 4-byte magic number (two zero bytes, the dtype code ``0x08`` for ubyte, the
    number of dimensions ``d``), then ``d`` big-endian uint32 sizes, then the data in C order.

    Parameters
    ----------
    path : path-like
        The file to read.

    Returns
    -------
    numpy.ndarray
        A writable ``uint8`` array with the stored shape.

    Raises
    ------
    ValueError
        If the file is corrupt: bad magic, an unsupported dtype, or a size that does not match.
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(buf)} bytes)")
    if buf[0] != 0 or buf[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic must start with two zero bytes)")
    if buf[2] != _UBYTE:
        raise ValueError(f"{path}: unsupported IDX dtype code 0x{buf[2]:02x} (only 0x08, ubyte)")
    ndim = buf[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"{path}: truncated IDX header (needs {header} bytes, has {len(buf)})")
    shape = tuple(int(s) for s in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(buf) - header != expected:
        raise ValueError(
            f"{path}: IDX data has {len(buf) - header} bytes but the header shape {shape} "
            f"needs {expected} (truncated or corrupt file)"
        )
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=4)
def _load_pair(image_path: str, label_path: str, _stamp: tuple) -> tuple[Tensor, Tensor]:
    """Parse and check one split; cached by resolved paths plus (mtime, size) of both files."""
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path}: images must be 3-D (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{label_path}: labels must be 1-D (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_path} has {images.shape[0]} images but {label_path} has "
            f"{labels.shape[0]} labels; the counts must agree"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(
    split: str = "train", *, root: str | os.PathLike | None = None
) -> tuple[Tensor, Tensor]:
    """Load a Fashion-MNIST split from local IDX files.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
        ``"train"`` has 60,000 examples, ``"test"`` 10,000.
    root : path-like or None, default None
        Directory with the files; see :func:`find_fashion_mnist_dir` for the search order.

    Returns
    -------
    images : Tensor
        ``uint8`` of shape ``(N, 28, 28)``.
    labels : Tensor
        ``int64`` of shape ``(N,)`` with values in ``[0, 10)``.

    Notes
    -----
    Parsed splits are cached (keyed by resolved path, modification time and size), so repeated
    calls are fast and **return the same tensors**: do not modify them in place (``.clone()``
    first if you must).
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {tuple(_FILES)}, got {split!r}")
    directory = find_fashion_mnist_dir(root)
    paths = [_file_in(directory, stem).resolve() for stem in _FILES[split]]
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return _load_pair(str(paths[0]), str(paths[1]), stamp)


def to_float_images(images: Tensor) -> Tensor:
    """Scale ``uint8`` images to float32 ``(N, 1, H, W)``, normalised as ``(x / 255 - mean) / std``.

    Parameters
    ----------
    images : Tensor
        ``uint8`` of shape ``(N, H, W)`` or ``(N, 1, H, W)``.

    Returns
    -------
    Tensor
        ``float32`` of shape ``(N, 1, H, W)`` on the input's device, using the Fashion-MNIST
        training statistics :data:`FMNIST_MEAN` and :data:`FMNIST_STD`.
    """
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a uint8 tensor, got {kind}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(
            f"images must have shape (N, H, W) or (N, 1, H, W), got {tuple(images.shape)}"
        )
    x = images.to(torch.float32).div_(255.0)
    return x.sub_(FMNIST_MEAN).div_(FMNIST_STD)
