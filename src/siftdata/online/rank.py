"""Rank-based selection (Loshchilov & Hutter, 2015): probability decays exponentially with loss rank."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._config import check_float_field
from .._validation import check_finite, check_k, check_vector
from ..core.sampling import sanitise_scores
from .base import GeneratorOwner, Selection
from .sampled import draw_without_replacement

__all__ = ["RankSelector"]


class RankSelector(GeneratorOwner):
    """Draw ``k`` examples without replacement with ``p(rank r) ∝ s ** (−r / (N − 1))``.

    Examples are ranked by score, highest first (r = 0 … N−1); the most-preferred example is
    ``selection_pressure`` (``s``) times as likely to be drawn first as the least-preferred one.
    Tied scores share the mean of the ranks they span, so they are equally likely.

    Parameters
    ----------
    selection_pressure:
        Ratio ``s ≥ 1`` of the first to the last rank's probability (the paper explores 1–10^8).
    seed, device:
        The selector's own generator.
    unbiased:
        Also return loss weights that keep the weighted mean loss unbiased for the super-batch
        mean (see :func:`~siftdata.online.sampled.draw_without_replacement`).
    check_values:
        Also check the scores for NaN/inf (one host sync per call).
    """

    def __init__(
        self,
        *,
        selection_pressure: float = 100.0,
        seed: int = 0,
        device="cpu",
        unbiased: bool = False,
        check_values: bool = False,
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.unbiased = bool(unbiased)
        check_float_field(selection_pressure, "selection_pressure", low=1.0)
        self.selection_pressure = float(selection_pressure)
        self.check_values = check_values

    def rank_log_weights(self, scores: Tensor) -> Tensor:
        """Unnormalised log-probability of each example from its (tie-averaged) rank.

        The rank from the top of a score ``v`` is ``#{s > v} + (#{s = v} − 1) / 2``.
        """
        n = scores.shape[0]
        ascending = torch.sort(scores).values
        below = torch.searchsorted(ascending, scores, right=False)  # #{s < v}
        not_above = torch.searchsorted(ascending, scores, right=True)  # #{s <= v}
        ranks = (n - not_above) + (not_above - below - 1) / 2
        return -math.log(self.selection_pressure) * ranks.to(scores.dtype) / max(n - 1, 1)

    def select(self, scores: Tensor, k: int) -> Selection:
        check_vector(scores, "scores")
        check_k(k, scores.shape[0])
        if self.check_values:
            check_finite(scores, "scores")
        scores = sanitise_scores(scores)[0]  # NaN would sort as the highest rank
        indices, weights = draw_without_replacement(
            self.rank_log_weights(scores), k, generator=self.generator, unbiased=self.unbiased
        )
        return Selection(indices=indices, weights=weights)

    def __repr__(self) -> str:
        unbiased = ", unbiased=True" if self.unbiased else ""
        return f"RankSelector(selection_pressure={self.selection_pressure}{unbiased}, seed={self.seed})"
