"""Accuracy and mean cross-entropy of a classifier on a fixed set, batched, in eval mode."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._modes import eval_mode

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: Tensor, labels: Tensor, *, batch_size: int = 2048
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(inputs, labels)``, in eval mode."""
    correct = torch.zeros((), device=inputs.device)
    total_loss = torch.zeros((), device=inputs.device)
    with eval_mode(model):
        for start in range(0, inputs.shape[0], batch_size):
            logits = model(inputs[start : start + batch_size])
            y = labels[start : start + batch_size]
            correct += (logits.argmax(1) == y).sum()
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum")
    n = inputs.shape[0]
    return {"test_acc": float(correct) / n, "test_loss": float(total_loss) / n}
