"""Selective backprop (Jiang et al., 2019): keep probability from the loss percentile in a rolling history."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_finite, check_int_range, check_k, check_positive, check_vector
from ..core.sampling import sanitise_scores
from .base import GeneratorOwner, Selection
from .sampled import draw_without_replacement

__all__ = ["SelectiveBackpropSelector"]


class SelectiveBackpropSelector(GeneratorOwner):
    """Keep probability ``P(keep | ℓ) = CDF_history(ℓ) ** beta`` from a rolling history of losses.

    The original method keeps each example independently and backpropagates whenever a batch has
    filled up; here the batch size is fixed, so ``k`` examples are drawn without replacement with
    probability ∝ their keep probability (Gumbel-top-k on its log). ``stats["expected_kept"]`` is the
    number the independent rule would have kept from this super-batch.

    Parameters
    ----------
    beta:
        Selectivity exponent (the paper uses 1–3; larger keeps fewer low-loss examples).
    history_size:
        Number of recent losses the percentile is computed against.
    seed, device:
        The selector's own generator.
    unbiased:
        Also return loss weights that keep the weighted mean loss unbiased for the super-batch
        mean (see :func:`~siftdata.online.sampled.draw_without_replacement`).
    check_values:
        Also check the losses for NaN/inf (one host sync per call).
    """

    def __init__(
        self,
        *,
        beta: float = 2.0,
        history_size: int = 4096,
        seed: int = 0,
        device="cpu",
        unbiased: bool = False,
        check_values: bool = False,
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.unbiased = bool(unbiased)
        self.beta = check_positive(beta, "beta")
        check_int_range(history_size, "history_size", low=1)
        self.history = torch.zeros(history_size, device=self.device)
        self.filled = 0  # number of valid history entries
        self.cursor = 0  # next write position in the ring buffer
        self.check_values = check_values

    def keep_probability(self, losses: Tensor) -> Tensor:
        """``CDF(ℓ) ** beta`` against the history (including these losses), floored at 1/(H+1)."""
        reference = torch.cat([self.history[: self.filled], losses.detach()])
        ordered = torch.sort(reference).values
        rank = torch.searchsorted(ordered, losses.detach(), right=True)
        cdf = rank.to(losses.dtype) / ordered.numel()
        return cdf.clamp_min(1.0 / (ordered.numel() + 1)).pow(self.beta)

    def _remember(self, losses: Tensor) -> None:
        size = self.history.numel()
        values = losses.detach().reshape(-1)[-size:]
        positions = (self.cursor + torch.arange(values.numel(), device=self.device)) % size
        self.history[positions] = values.to(self.history.dtype)
        self.cursor = (self.cursor + values.numel()) % size
        self.filled = min(size, self.filled + values.numel())

    def select(self, scores: Tensor, k: int) -> Selection:
        """``scores`` are the learner's per-example losses on the super-batch."""
        check_vector(scores, "scores")
        check_k(k, scores.shape[0])
        if self.check_values:
            check_finite(scores, "scores")
        scores = sanitise_scores(scores)[0]  # a NaN in the history would poison every later CDF
        keep = self.keep_probability(scores)
        indices, weights = draw_without_replacement(
            keep.log(), k, generator=self.generator, unbiased=self.unbiased
        )
        self._remember(scores)
        stats = {"expected_kept": keep.sum()}
        return Selection(indices=indices, weights=weights, stats=stats)

    def __repr__(self) -> str:
        size = self.history.numel()
        unbiased = ", unbiased=True" if self.unbiased else ""
        return (
            f"SelectiveBackpropSelector(beta={self.beta}, history_size={size}{unbiased}, "
            f"seed={self.seed})"
        )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(history=self.history.clone(), filled=self.filled, cursor=self.cursor)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = state["history"].to(self.device).clone()
        self.filled, self.cursor = int(state["filled"]), int(state["cursor"])
