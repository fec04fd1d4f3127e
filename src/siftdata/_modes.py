"""Evaluation mode for a block, restoring every submodule's own train/eval flag afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model.eval()`` for the block; then each submodule gets back the mode it had.

    ``model.train()`` afterwards would be wrong: it would unfreeze a BatchNorm layer the user had
    put in eval mode on purpose (common when fine-tuning).
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
