"""Cheaper scoring by model approximation, and multi-resolution training to keep it faithful.

JEST's Flexi variant scores the super-batch with the learner at a lower input resolution (and/or
through fewer layers), which costs a fraction of a full forward, and trains a share of each batch
at that resolution so the learner stays good at the resolution it is scored at. Evaluation stays
at full resolution.

* :class:`LowResolution` is a *scoring forward*: ``forward(model, inputs) -> outputs`` replacing
  ``model(inputs)`` in the no-grad scoring pass.
* :class:`MultiResolution` is a *training forward*: per-example losses of a selected batch, a share
  of it at low resolution.

Inputs are an image tensor ``(N, C, H, W)`` or a tuple whose first part is one (``(images,
tokens)`` for a two-tower model); images are average-pooled by an integer ``factor``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._batch import batch_len, index_inputs
from .._validation import check_bool, check_fraction, check_int_range
from ..core.pairwise import PairEmbeddings
from .step import LossFn

__all__ = ["downsample", "LowResolution", "MultiResolution"]


def downsample(inputs: Any, factor: int) -> Any:
    """``inputs`` with the images average-pooled by ``factor`` (28×28 → 14×14 for 2)."""
    if factor == 1:
        return inputs
    if isinstance(inputs, Tensor):
        return _pool(inputs, factor)
    images, *rest = inputs
    return (_pool(images, factor), *rest)


def _pool(images: Tensor, factor: int) -> Tensor:
    if images.dim() != 4:
        raise ValueError(
            f"low-resolution scoring needs images of shape (N, C, H, W), got {tuple(images.shape)}"
        )
    return F.avg_pool2d(images, factor)


def _forward(model: nn.Module, inputs: Any, early_exit: bool) -> Any:
    return model(inputs, early_exit=True) if early_exit else model(inputs)


class LowResolution:
    """Score with the learner on images pooled by ``factor`` and/or through its early-exit head.

    Parameters
    ----------
    factor:
        Integer pooling factor (1 keeps full resolution).
    early_exit:
        Call ``model(inputs, early_exit=True)`` (a model with an early-exit head, such as
        :class:`~siftdata.models.TwoTower`).
    """

    def __init__(self, *, factor: int = 2, early_exit: bool = False) -> None:
        self.factor = check_int_range(factor, "factor", low=1)
        self.early_exit = check_bool(early_exit, "early_exit")
        if self.factor == 1 and not self.early_exit:
            raise ValueError(
                "factor=1 without early_exit is the full model: nothing to approximate"
            )

    def __call__(self, model: nn.Module, inputs: Any) -> Any:
        return _forward(model, downsample(inputs, self.factor), self.early_exit)

    def __repr__(self) -> str:
        return f"LowResolution(factor={self.factor}, early_exit={self.early_exit})"


class MultiResolution:
    """Train a ``share`` of each selected batch at low resolution, the rest at full, in one loss.

    The low-resolution examples are spread evenly over the batch (the selection's order follows
    its draw, so a prefix would always be the first chunk). The two parts run as two forwards;
    their outputs are put back in the batch's order and the loss function sees them together,
    so for a contrastive loss every pair keeps all the others as negatives.

    Parameters
    ----------
    share:
        Fraction of the batch trained at low resolution, in ``(0, 1)``.
    factor:
        Pooling factor of the low-resolution part.
    early_exit:
        Train the low-resolution part through the model's early-exit head as well (use it when
        scoring with ``LowResolution(early_exit=True)``, so that head is trained).
    """

    def __init__(self, *, share: float = 0.5, factor: int = 2, early_exit: bool = False) -> None:
        self.share = check_fraction(share, "share", low_open=True, high_open=True)
        self.factor = check_int_range(factor, "factor", low=2)
        self.early_exit = check_bool(early_exit, "early_exit")

    def split(self, size: int) -> int:
        """How many of a batch of ``size`` are trained at low resolution (at least one of each)."""
        return min(max(round(self.share * size), 1), size - 1)

    def low_positions(
        self, size: int, device: torch.device | None = None, part: tuple[int, int] | None = None
    ) -> Tensor:
        """Positions of the low-resolution examples: :meth:`split` of them, evenly spaced.

        With ``part=(offset, total)`` the batch is rows ``offset … offset + size − 1`` of a
        batch of ``total`` (a rank's share of the selection): its positions are those of the
        whole batch's that fall in it, shifted to start at 0 (host arithmetic: no sync)."""
        offset, total = part if part is not None else (0, size)
        low = self.split(total)
        first = -(-offset * low // total)  # the first j with j·total // low >= offset
        stop = -(-(offset + size) * low // total)
        return (torch.arange(first, stop, device=device) * total) // low - offset

    def losses(
        self,
        model: nn.Module,
        inputs: Any,
        labels: Tensor,
        loss_fn: LossFn,
        *,
        low_model: nn.Module | None = None,
        part: tuple[int, int] | None = None,
    ) -> Tensor:
        """Per-example losses of the whole batch, a share of it seen at low resolution.

        ``low_model`` runs the low-resolution forward (default ``model``): under DDP the module
        itself, so the wrapper sees one forward per backward while autograd sums both uses of
        each parameter before DDP's hook fires. ``part`` as in :meth:`low_positions`."""
        size = batch_len(inputs)
        low = self.low_positions(size, labels.device, part)
        if size < 2 or not 0 < low.shape[0] < size:
            raise ValueError(
                f"multi-resolution training needs examples at both resolutions in a batch (or "
                f"a rank's share) of {size}: give a larger batch or a share further from 0 or 1"
            )
        full = _complement(low, size)
        low_out = _forward(
            low_model if low_model is not None else model,
            downsample(index_inputs(inputs, low), self.factor),
            self.early_exit,
        )
        full_out = model(index_inputs(inputs, full))
        return loss_fn(_merge(low_out, full_out, low, full, size), labels)

    def __repr__(self) -> str:
        return (
            f"MultiResolution(share={self.share}, factor={self.factor}, "
            f"early_exit={self.early_exit})"
        )


def _complement(positions: Tensor, size: int) -> Tensor:
    """The positions of ``range(size)`` not in the sorted ``positions`` (no boolean mask: no sync)."""
    keep = torch.ones(size, dtype=torch.long, device=positions.device).index_fill_(0, positions, 0)
    order = torch.argsort(keep, descending=True, stable=True)
    return order[: size - positions.shape[0]]


def _merge(first: Any, second: Any, at_first: Tensor, at_second: Tensor, size: int) -> Any:
    """Outputs of two parts of a batch put back in the batch's order (tensors or pair embeddings)."""
    if isinstance(first, Tensor):
        out = first.new_empty((size, *first.shape[1:]))
        return out.index_copy(0, at_first, first).index_copy(0, at_second, second)
    if isinstance(first, PairEmbeddings):
        image = _merge(first.image, second.image, at_first, at_second, size)
        text = _merge(first.text, second.text, at_first, at_second, size)
        return PairEmbeddings(image, text, second.scale, second.bias)
    raise ValueError(
        "multi-resolution training merges tensor outputs or PairEmbeddings, got "
        f"{type(first).__name__}"
    )
