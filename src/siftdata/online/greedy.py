"""Deterministic and uniform selectors: top-k of the scores, and the uniform baseline."""

from __future__ import annotations

from torch import Tensor

from .._validation import check_finite, check_k, check_vector
from ..core.sampling import top_k, uniform_without_replacement
from .base import GeneratorOwner, Selection

__all__ = ["TopKSelector", "UniformSelector"]


class TopKSelector:
    """Keep the ``k`` highest-scoring examples (RHO-LOSS's rule when the score is learnability).

    Parameters
    ----------
    check_values:
        Also check the scores for NaN/inf (one host sync per call).
    """

    def __init__(self, *, check_values: bool = False) -> None:
        self.check_values = check_values

    def __call__(self, scores: Tensor, k: int) -> Selection:
        return self.select(scores, k)

    def select(self, scores: Tensor, k: int) -> Selection:
        return Selection(indices=top_k(scores, k, check_values=self.check_values))

    def state_dict(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return "TopKSelector()"

    def load_state_dict(self, state: dict) -> None:
        return None


class UniformSelector(GeneratorOwner):
    """Keep ``k`` examples uniformly at random without replacement (the baseline); ignores the values."""

    def __init__(self, *, seed: int = 0, device="cpu", check_values: bool = False) -> None:
        super().__init__(seed=seed, device=device)
        self.check_values = check_values

    def select(self, scores: Tensor, k: int) -> Selection:
        check_vector(scores, "scores")
        check_k(k, scores.shape[0])
        if self.check_values:
            check_finite(scores, "scores")
        indices = uniform_without_replacement(
            scores.shape[0], k, generator=self.generator, device=scores.device
        )
        return Selection(indices=indices)

    def __repr__(self) -> str:
        return f"UniformSelector(seed={self.seed})"
