"""The selection step for any training loop: one no-grad forward over a super-batch, score, select.

::

    sel = siftdata.select_batch(model, x, y, ids, k=b, scorer=scorer, selector=selector)
    x, y = x[sel.indices], y[sel.indices]        # then the ordinary training step

The forward runs only when the scorer needs it (a scorer of cached or remembered values needs
none), under :func:`torch.no_grad` and with the model in ``eval()`` mode, restored afterwards, so
scoring never changes the model: BatchNorm running statistics are not updated and dropout is off
(BatchNorm layers normalise with their running statistics while scoring). Nothing here syncs with
the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .._modes import eval_mode
from .._validation import check_finite
from ..core.sampling import sanitise_scores
from ..core.scores import per_example_loss
from ..scoring.scorers import FORWARD_NEEDS, Need, Scorer, ScoringBatch
from .base import JointSelector, PairwiseScores, Selection, Selector

__all__ = [
    "LossFn",
    "ScoringForward",
    "scoring_mode",
    "forward_for_scoring",
    "choose",
    "select_batch",
]

LossFn = Callable[[Any, Tensor], Tensor]
"""Per-example loss: ``loss_fn(outputs, labels) -> (B,)`` (default: softmax cross-entropy)."""

ScoringForward = Callable[[nn.Module, Any], Any]
"""``forward(model, inputs) -> outputs`` for the scoring pass, in place of ``model(inputs)`` (a
cheaper approximation such as :class:`~siftdata.online.approximation.LowResolution`)."""


@contextmanager
def scoring_mode(model: nn.Module) -> Iterator[None]:
    """``eval()`` mode and no autograd for the block; every submodule's mode is restored."""
    with eval_mode(model), torch.no_grad():
        yield


def forward_for_scoring(
    model: nn.Module,
    inputs: Any,
    labels: Tensor | None,
    ids: Tensor,
    *,
    needs: frozenset[Need],
    loss_fn: LossFn = per_example_loss,
    forward: ScoringForward | None = None,
) -> ScoringBatch:
    """The scorer's inputs for a super-batch: the learner forward only if ``needs`` asks for it.

    Parameters
    ----------
    model:
        The learner; run in :func:`scoring_mode`.
    inputs, labels:
        The super-batch (``inputs`` may be ``None`` when no forward is needed).
    ids:
        ``(B,)`` example ids.
    needs:
        The scorer's :attr:`~siftdata.scoring.scorers.Scorer.needs`.
    loss_fn:
        Per-example loss of ``(outputs, labels)``, computed only for :attr:`Need.LOSS`.
    forward:
        The scoring pass, ``forward(model, inputs)``; default ``model(inputs)``.
    """
    if not needs & FORWARD_NEEDS:
        return ScoringBatch(ids=ids, labels=labels)
    if inputs is None:
        raise ValueError("the scorer needs the learner's forward, but inputs is None")
    with scoring_mode(model):
        outputs = model(inputs) if forward is None else forward(model, inputs)
        loss = loss_fn(outputs, labels) if Need.LOSS in needs else None
    return ScoringBatch(ids=ids, labels=labels, outputs=outputs, loss=loss)


def select_batch(
    model: nn.Module,
    inputs: Any,
    labels: Tensor | None,
    ids: Tensor,
    *,
    k: int,
    scorer: Scorer,
    selector: Selector | JointSelector,
    loss_fn: LossFn = per_example_loss,
    forward: ScoringForward | None = None,
) -> Selection:
    """Score a super-batch of ``B`` examples and choose ``k`` of them.

    One no-grad forward (only if ``scorer`` needs it, see :func:`forward_for_scoring`), then
    ``scorer`` and ``selector``. The returned :class:`Selection` holds positions into the
    super-batch, optional loss weights, and stats (the selector's plus the mean score of the
    selected examples and of the super-batch), all on the device, with no host sync.

    Parameters
    ----------
    model:
        The learner.
    inputs, labels, ids:
        The super-batch; ``ids`` are example ids (what cached scores are keyed by).
    k:
        How many to keep, ``1 ≤ k ≤ B``.
    scorer, selector:
        What to score by and how to choose.
    loss_fn:
        Per-example loss of ``(outputs, labels)``.
    forward:
        A cheaper scoring pass ``forward(model, inputs)`` in place of ``model(inputs)``.
    """
    batch = forward_for_scoring(
        model, inputs, labels, ids, needs=scorer.needs, loss_fn=loss_fn, forward=forward
    )
    return choose(scorer(batch), k, selector)


def choose(
    scores: Tensor | PairwiseScores, k: int, selector: Selector | JointSelector
) -> Selection:
    """``selector.select(scores, k)``, with the per-example score means added to its stats.

    Per-example scores (a tensor) go to a :class:`Selector`, NaN and ±inf ones first set to the
    batch's lowest score and counted (stat ``nonfinite_scores``; the training loop warns at its
    next evaluation); :class:`PairwiseScores` to a :class:`JointSelector`, whose selection is
    returned as it is.
    """
    if not isinstance(scores, Tensor):
        return selector.select(scores, k)
    if getattr(selector, "check_values", False):  # the selector's own check, before sanitising
        check_finite(scores, "scores")
    scores, nonfinite = sanitise_scores(scores)
    selection = selector.select(scores, k)
    stats = {**selection.stats, **selection.score_stats(scores), "nonfinite_scores": nonfinite}
    return Selection(indices=selection.indices, weights=selection.weights, stats=stats)
