"""Rank-based selection (Loshchilov & Hutter, 2015): probability decays exponentially with loss rank."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_finite, check_k, check_vector
from ..sampling import gumbel_top_k
from .base import GeneratorOwner, Selection

__all__ = ["RankSelector"]


class RankSelector(GeneratorOwner):
    """Draw ``k`` examples without replacement with ``p(rank r) ∝ s ** (−r / (N − 1))``.

    Examples are ranked by score, highest first (r = 0 … N−1); the most-preferred example is
    ``selection_pressure`` (``s``) times as likely to be drawn first as the least-preferred one.

    Parameters
    ----------
    selection_pressure:
        Ratio ``s ≥ 1`` of the first to the last rank's probability (the paper explores 1–10^8).
    seed, device:
        The selector's own generator.
    validate:
        Check the scores (one host sync per call).
    """

    def __init__(
        self,
        *,
        selection_pressure: float = 100.0,
        seed: int = 0,
        device="cpu",
        validate: bool = True,
    ) -> None:
        super().__init__(seed=seed, device=device)
        if not selection_pressure >= 1.0 or math.isinf(selection_pressure):
            raise ValueError(
                f"selection_pressure must be a finite number >= 1, got {selection_pressure}"
            )
        self.selection_pressure = float(selection_pressure)
        self.validate = validate

    def rank_log_weights(self, scores: Tensor) -> Tensor:
        """Unnormalised log-probability of each example from its rank."""
        n = scores.shape[0]
        order = torch.argsort(scores, descending=True)
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(n, device=scores.device)
        return -math.log(self.selection_pressure) * ranks.to(scores.dtype) / max(n - 1, 1)

    def select(self, scores: Tensor, k: int) -> Selection:
        if self.validate:
            check_vector(scores, "scores")
            check_finite(scores, "scores")
        check_k(k, scores.shape[0])
        indices = gumbel_top_k(
            self.rank_log_weights(scores), k, generator=self.generator, validate=False
        )
        return Selection(indices=indices)
