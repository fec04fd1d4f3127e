"""Deterministic and uniform selectors: top-k of the scores, and the uniform baseline."""

from __future__ import annotations

from torch import Tensor

from .._validation import check_finite, check_k, check_vector
from ..sampling import top_k, uniform_without_replacement
from .base import GeneratorOwner, Selection

__all__ = ["TopKSelector", "UniformSelector"]


class TopKSelector:
    """Keep the ``k`` highest-scoring examples (RHO-LOSS's rule when the score is learnability).

    Parameters
    ----------
    validate:
        Check scores for shape and NaN/inf (one host sync per call); set ``False`` on a hot GPU path.
    """

    def __init__(self, *, validate: bool = True) -> None:
        self.validate = validate

    def __call__(self, scores: Tensor, k: int) -> Selection:
        return self.select(scores, k)

    def select(self, scores: Tensor, k: int) -> Selection:
        indices = top_k(scores, k, validate=self.validate)
        return Selection(indices=indices)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class UniformSelector(GeneratorOwner):
    """Keep ``k`` examples uniformly at random without replacement (the baseline); ignores the values."""

    def __init__(self, *, seed: int = 0, device="cpu", validate: bool = True) -> None:
        super().__init__(seed=seed, device=device)
        self.validate = validate

    def select(self, scores: Tensor, k: int) -> Selection:
        if self.validate:
            check_vector(scores, "scores")
            check_finite(scores, "scores")
        check_k(k, scores.shape[0])
        indices = uniform_without_replacement(
            scores.shape[0], k, generator=self.generator, device=scores.device
        )
        return Selection(indices=indices)
