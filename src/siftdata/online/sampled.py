"""Softmax sampling without replacement: draw ``k`` examples with probability ∝ exp(score / τ)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_finite, check_k, check_positive, check_vector
from ..core.sampling import gumbel_top_k, gumbel_top_k_with_threshold, sanitise_scores
from ..core.unbiased import without_replacement_weights
from .base import GeneratorOwner, Selection

__all__ = ["SoftmaxSampler", "DEFAULT_TEMPERATURE_SCALE", "draw_without_replacement"]

DEFAULT_TEMPERATURE_SCALE = 0.5
"""τ / std(scores) when neither a temperature nor a scale is given (see docs/benchmarks.md)."""


class SoftmaxSampler(GeneratorOwner):
    """Sample ``k`` distinct examples from softmax(score / τ) (Gumbel-top-k, Plackett–Luce order).

    Sampling instead of top-k keeps some diversity: top-k on learnability keeps drawing the same
    ~30k "easy but unlearnt" examples of a 50k pool, while sampling still favours them but lets the
    learner see the rest of the clean data.

    Parameters
    ----------
    temperature:
        A fixed τ > 0. Give either this or ``temperature_scale``, not both.
    temperature_scale:
        τ = ``temperature_scale`` · std(scores of this super-batch); adapts to the score's scale as
        training goes on. Computed on the scores' device, no host sync. When the scores of a
        super-batch are all equal (std 0) every τ gives the uniform distribution and τ = 1 is used.
        Default :data:`DEFAULT_TEMPERATURE_SCALE` when neither argument is given.
    seed, device:
        The selector's own generator (see :class:`GeneratorOwner`).
    unbiased:
        Also return loss weights ``k / (B·q_i)`` that make the weighted mean loss of the selection
        an unbiased estimate of the super-batch mean
        (:func:`siftdata.core.unbiased.without_replacement_weights`).
    check_values:
        Also check the scores for NaN/inf (one host sync per call).
    """

    def __init__(
        self,
        *,
        temperature: float | None = None,
        temperature_scale: float | None = None,
        unbiased: bool = False,
        seed: int = 0,
        device="cpu",
        check_values: bool = False,
    ) -> None:
        super().__init__(seed=seed, device=device)
        if temperature is not None and temperature_scale is not None:
            raise ValueError(
                "give either temperature (a fixed τ) or temperature_scale (τ relative to the "
                f"scores' std), not both; got temperature={temperature}, "
                f"temperature_scale={temperature_scale}"
            )
        self.temperature: float | None = None
        self.temperature_scale: float | None = None
        if temperature is not None:
            self.temperature = check_positive(temperature, "temperature")
        else:
            scale = DEFAULT_TEMPERATURE_SCALE if temperature_scale is None else temperature_scale
            self.temperature_scale = check_positive(scale, "temperature_scale")
        self.unbiased = bool(unbiased)
        self.check_values = check_values

    def temperature_for(self, scores: Tensor) -> Tensor | float:
        """The τ used for this super-batch (a 0-d tensor when it is relative to the scores' std)."""
        if self.temperature is not None:
            return self.temperature
        if scores.shape[0] < 2:
            return 1.0
        std = scores.std()
        tau = (self.temperature_scale * std).clamp_min(torch.finfo(std.dtype).tiny)
        return torch.where(std > 0, tau, torch.ones_like(tau))

    def select(self, scores: Tensor, k: int) -> Selection:
        check_vector(scores, "scores")
        check_k(k, scores.shape[0])
        if (
            self.check_values
        ):  # scores first: a τ derived from bad scores is bad for the same reason
            check_finite(scores, "scores")
        scores = sanitise_scores(scores)[0]  # a NaN would make the std-scaled τ NaN
        tau = self.temperature_for(scores)
        indices, weights = draw_without_replacement(
            scores, k, temperature=tau, generator=self.generator, unbiased=self.unbiased
        )
        if not isinstance(tau, Tensor):  # a fill on the device, not a host-to-device copy
            tau = torch.full((), tau, dtype=scores.dtype, device=scores.device)
        return Selection(indices=indices, weights=weights, stats=_stats(tau, weights))

    def __repr__(self) -> str:
        if self.temperature is not None:
            options = f"temperature={self.temperature}"
        else:
            options = f"temperature_scale={self.temperature_scale}"
        if self.unbiased:
            options += ", unbiased=True"
        return f"SoftmaxSampler({options}, seed={self.seed})"


def _stats(tau: Tensor, weights: Tensor | None) -> dict[str, Tensor]:
    if weights is None:
        return {"temperature": tau}
    return {"temperature": tau, "weight_max": weights.max()}


def draw_without_replacement(
    log_weights: Tensor,
    k: int,
    *,
    temperature: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
    unbiased: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Gumbel-top-k from ``softmax(log_weights / τ)``, with unbiased loss weights if asked.

    Returns ``(indices, weights)``; ``weights`` is ``None`` unless ``unbiased``, then
    :func:`siftdata.core.unbiased.without_replacement_weights` of the draw. The indices are the same
    either way for the same generator state.
    """
    if not unbiased:
        return gumbel_top_k(log_weights, k, temperature=temperature, generator=generator), None
    indices, threshold = gumbel_top_k_with_threshold(
        log_weights, k, temperature=temperature, generator=generator
    )
    weights = without_replacement_weights(log_weights, indices, threshold, temperature=temperature)
    return indices, weights.to(log_weights.dtype)
