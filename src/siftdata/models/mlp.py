"""A plain multi-layer perceptron (no BatchNorm, no dropout) for flattened images."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .._validation import check_int_range

__all__ = ["MLP"]


class MLP(nn.Module):
    """Flatten, then ``Linear-ReLU`` per hidden layer, then a linear classifier.

    Parameters
    ----------
    in_features : int, default 784
        Input size after flattening (28 * 28 for Fashion-MNIST).
    hidden : sequence of int, default (512, 256)
        Width of each hidden layer; may be empty (a linear model).
    num_classes : int, default 10
        Number of output logits.

    Notes
    -----
    Accepts ``(N, 1, 28, 28)``, ``(N, 28, 28)`` or ``(N, 784)`` input. Without BatchNorm or
    dropout the outputs are the same in ``train()`` and ``eval()`` mode, so scoring a batch
    needs no mode switch.
    """

    def __init__(
        self, *, in_features: int = 784, hidden: Sequence[int] = (512, 256), num_classes: int = 10
    ) -> None:
        super().__init__()
        check_int_range(in_features, "in_features", low=1)
        check_int_range(num_classes, "num_classes", low=1)
        for h in hidden:
            check_int_range(h, "hidden (each layer)", low=1)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, hidden[-1])`` (embeddings for k-center and the like)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)``."""
        return self.head(self.body(x))
