"""Softmax sampling without replacement: draw ``k`` examples with probability ∝ exp(score / τ)."""

from __future__ import annotations

from torch import Tensor

from .._validation import check_finite, check_k, check_positive, check_vector
from ..sampling import gumbel_top_k
from .base import GeneratorOwner, Selection

__all__ = ["SoftmaxSampler"]

_MIN_TEMPERATURE = 1e-8


class SoftmaxSampler(GeneratorOwner):
    """Sample ``k`` distinct examples from softmax(score / τ) (Gumbel-top-k, Plackett–Luce order).

    Sampling instead of top-k keeps some diversity: top-k on learnability keeps drawing the same
    ~30k "easy but unlearnt" examples of a 50k pool, while sampling still favours them but lets the
    learner see the rest of the clean data.

    Parameters
    ----------
    temperature:
        A fixed τ > 0. Mutually exclusive with ``temperature_scale``.
    temperature_scale:
        τ = ``temperature_scale`` · std(scores of this super-batch); adapts to the score's scale as
        training goes on (default 0.5). Computed on the scores' device, no host sync.
    seed, device:
        The selector's own generator (see :class:`GeneratorOwner`).
    validate:
        Check the scores (one host sync per call).
    """

    def __init__(
        self,
        *,
        temperature: float | None = None,
        temperature_scale: float | None = 0.5,
        seed: int = 0,
        device="cpu",
        validate: bool = True,
    ) -> None:
        super().__init__(seed=seed, device=device)
        if temperature is not None:
            self.temperature: float | None = check_positive(temperature, "temperature")
            self.temperature_scale = None
        elif temperature_scale is not None:
            self.temperature = None
            self.temperature_scale = check_positive(temperature_scale, "temperature_scale")
        else:
            raise ValueError("give either temperature or temperature_scale")
        self.validate = validate

    def temperature_for(self, scores: Tensor) -> Tensor | float:
        """The τ used for this super-batch (a 0-d tensor when it is relative to the scores' std)."""
        if self.temperature is not None:
            return self.temperature
        if scores.shape[0] < 2:
            return 1.0
        return (self.temperature_scale * scores.std()).clamp_min(_MIN_TEMPERATURE)

    def select(self, scores: Tensor, k: int) -> Selection:
        if self.validate:  # scores first: a τ derived from bad scores is bad for the same reason
            check_vector(scores, "scores")
            check_finite(scores, "scores")
        check_k(k, scores.shape[0])
        tau = self.temperature_for(scores)
        indices = gumbel_top_k(scores, k, temperature=tau, generator=self.generator, validate=False)
        stats = {"temperature": tau if isinstance(tau, Tensor) else scores.new_tensor(tau)}
        return Selection(indices=indices, stats=stats)
