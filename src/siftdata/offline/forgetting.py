"""Forgetting events (Toneva et al., 2019), tracked during a proxy's training.

An example is *forgotten* when it goes from classified correctly at one presentation to
incorrectly at its next one. Its score is the number of such events; an example never classified
correctly gets ``+inf`` (never learned: the most forgettable), so ranking by the score keeps the
hardest examples first. Updates are tensor operations on the device, with no host sync.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_int_range

__all__ = ["ForgettingTracker"]


class ForgettingTracker:
    """Per-example forgetting counts over presentations, indexed ``0 … N−1``.

    Parameters
    ----------
    num_examples : int
        ``N``.
    device : torch.device or str
        Where the counters live (the proxy's device).
    """

    def __init__(self, num_examples: int, *, device="cpu") -> None:
        n = check_int_range(num_examples, "num_examples", low=1)
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.ever_correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.forgotten = torch.zeros(n, dtype=torch.long, device=device)
        self.presented = torch.zeros(n, dtype=torch.long, device=device)

    def update(self, indices: Tensor, correct: Tensor) -> None:
        """Record one presentation of each of ``indices`` (distinct) and whether it was correct."""
        if indices.dim() != 1 or correct.shape != indices.shape:
            raise ValueError(
                f"indices and correct must be 1-D of one length, got {tuple(indices.shape)} and "
                f"{tuple(correct.shape)}"
            )
        correct = correct.to(torch.bool)
        was = self.last_correct.index_select(0, indices)
        self.forgotten.index_add_(0, indices, (was & ~correct).long())
        self.last_correct.index_copy_(0, indices, correct)
        self.ever_correct.index_copy_(
            0, indices, self.ever_correct.index_select(0, indices) | correct
        )
        self.presented.index_add_(0, indices, torch.ones_like(indices))

    def scores(self) -> Tensor:
        """``(N,)`` float: forgetting events, ``+inf`` for examples never classified correctly.

        Stores and selection policies need finite scores: use
        :func:`siftdata.offline.forgetting_scores` for those.
        """
        counts = self.forgotten.to(torch.float32)
        return torch.where(self.ever_correct, counts, torch.full_like(counts, float("inf")))

    def state_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k).clone()
            for k in ("last_correct", "ever_correct", "forgotten", "presented")
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            mine = getattr(self, key)
            if value.shape != mine.shape:
                raise ValueError(
                    f"state holds {tuple(value.shape)} {key}, this tracker {tuple(mine.shape)}"
                )
            setattr(self, key, value.to(mine.device).clone())
