"""Small reference networks for demos and benchmarks, and a builder that scales their width.

None uses BatchNorm or dropout, so scoring in ``eval()`` or ``train()`` mode gives the same numbers.
"""

from __future__ import annotations

from torch import nn

from .._validation import check_int_range, check_positive
from .cnn import SmallCNN
from .mlp import MLP
from .two_tower import TwoTower

__all__ = ["MLP", "SmallCNN", "TwoTower", "MODEL_NAMES", "build_model"]

MODEL_NAMES: tuple[str, ...] = ("mlp", "cnn")
"""Names accepted by :func:`build_model`."""


def _scaled(size: int, width: float) -> int:
    return max(1, round(size * width))


def build_model(name: str, *, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """Build a reference network for 28x28 one-channel images.

    Parameters
    ----------
    name : {"mlp", "cnn"}
        ``"mlp"``: :class:`MLP` with hidden sizes (512, 256); ``"cnn"``: :class:`SmallCNN` with
        channels (32, 64) and hidden size 128.
    num_classes : int, default 10
        Number of output logits.
    width : float, default 1.0
        Multiplies every hidden size and channel count (rounded, at least 1 each); values
        below 1 give cheap proxy models for SVP-style selection.

    Returns
    -------
    torch.nn.Module
        Freshly initialised from torch's global RNG (wrap in ``torch.random.fork_rng`` and seed
        it to make the initial weights reproducible).
    """
    check_positive(width, "width")
    check_int_range(num_classes, "num_classes", low=1)
    if name == "mlp":
        hidden = (_scaled(512, width), _scaled(256, width))
        return MLP(hidden=hidden, num_classes=num_classes)
    if name == "cnn":
        channels = (_scaled(32, width), _scaled(64, width))
        return SmallCNN(num_classes=num_classes, channels=channels, hidden=_scaled(128, width))
    raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
