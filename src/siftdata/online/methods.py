"""Named online-selection methods: a score rule plus a selector, as used by the CLI and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torch import Tensor

from .._validation import check_positive
from ..scores import learnability
from .base import Selection, Selector
from .greedy import TopKSelector, UniformSelector
from .rank import RankSelector
from .sampled import SoftmaxSampler
from .selective_backprop import SelectiveBackpropSelector

__all__ = [
    "ScoreRule",
    "OnlineMethod",
    "METHOD_NAMES",
    "DEFAULT_LEARNABILITY",
    "LEARNER_SCORES",
    "STALE_SUFFIX",
    "build_method",
]


class ScoreRule(str, Enum):
    """Which per-example score a method ranks by."""

    NONE = "none"  # uniform: nothing is scored
    LEARNER_LOSS = "learner_loss"  # hard learner: the current model's loss
    EASY_REFERENCE = "easy_reference"  # −reference loss
    LEARNABILITY = "learnability"  # learner loss − reference loss (RHO-LOSS)


LEARNER_SCORES = ("fresh", "stale")
"""How a method gets the learner's loss on a super-batch: ``fresh`` (a forward pass over the whole
super-batch every step) or ``stale`` (the loss each example had when last trained on, from a
:class:`~siftdata.online.LossMemory`; no scoring FLOPs)."""


@dataclass
class OnlineMethod:
    """A score rule and the selector that picks from it; the training loop needs nothing else."""

    name: str
    rule: ScoreRule
    selector: Selector
    learner_scores: str = "fresh"
    """One of :data:`LEARNER_SCORES`."""
    learner_loss_cap: float | None = None
    """Learnability clips the learner loss here (see :func:`siftdata.scores.learnability`)."""

    def __post_init__(self) -> None:
        if self.learner_scores not in LEARNER_SCORES:
            raise ValueError(
                f"learner_scores must be one of {LEARNER_SCORES}, got {self.learner_scores!r}"
            )

    @property
    def scores_fresh(self) -> bool:
        """Whether each step needs a learner forward over the whole super-batch."""
        return self.needs_learner_loss and self.learner_scores == "fresh"

    @property
    def needs_learner_loss(self) -> bool:
        return self.rule in (ScoreRule.LEARNER_LOSS, ScoreRule.LEARNABILITY)

    @property
    def needs_reference_loss(self) -> bool:
        return self.rule in (ScoreRule.EASY_REFERENCE, ScoreRule.LEARNABILITY)

    def score(self, learner_loss: Tensor | None, reference_loss: Tensor | None) -> Tensor | None:
        """The score of each super-batch example under this method's rule (``None`` for uniform)."""
        if self.rule is ScoreRule.NONE:
            return None
        if self.rule is ScoreRule.LEARNER_LOSS:
            return _required(learner_loss, "learner_loss", self.name)
        if self.rule is ScoreRule.EASY_REFERENCE:
            return -_required(reference_loss, "reference_loss", self.name)
        return learnability(
            _required(learner_loss, "learner_loss", self.name),
            _required(reference_loss, "reference_loss", self.name),
            learner_loss_cap=self.learner_loss_cap,
            validate=False,
        )

    def select(self, scores: Tensor, k: int) -> Selection:
        return self.selector.select(scores, k)


def _required(x: Tensor | None, name: str, method: str) -> Tensor:
    if x is None:
        raise ValueError(f"method {method!r} needs {name}, got None")
    return x


# The variant `learnability` stands for; see docs/benchmarks.md for why.
DEFAULT_LEARNABILITY = "learnability-sampled"

METHOD_NAMES = (
    "uniform",
    "hard-learner",
    "easy-reference",
    "learnability",
    "learnability-topk",
    "learnability-sampled",
    "selective-backprop",
    "rank",
)


STALE_SUFFIX = "+stale"
"""Appended to a method name that ranks by learner loss, it scores with stale losses (see
:data:`LEARNER_SCORES`), e.g. ``learnability+stale``."""


def build_method(
    name: str,
    *,
    seed: int = 0,
    device="cpu",
    temperature_scale: float = 0.5,
    beta: float = 2.0,
    selection_pressure: float = 100.0,
    learner_loss_cap: float | None = None,
    validate: bool = True,
) -> OnlineMethod:
    """Build a named method.

    Parameters
    ----------
    name:
        One of :data:`METHOD_NAMES`; ``learnability`` means :data:`DEFAULT_LEARNABILITY`. A method
        that uses the learner's loss may end in :data:`STALE_SUFFIX` to score with stale losses.
    seed, device:
        For the selector's own generator.
    temperature_scale:
        τ / std(scores) for the sampled learnability variant.
    beta:
        Selective-backprop exponent.
    selection_pressure:
        Rank-based selection's first/last probability ratio.
    learner_loss_cap:
        Learnability methods clip the learner loss at this value (``None``: no clip); the
        benchmarks use ``log C``.
    validate:
        Selectors check their scores (one host sync per step).
    """
    base, stale = (
        (name[: -len(STALE_SUFFIX)], True) if name.endswith(STALE_SUFFIX) else (name, False)
    )
    method = _build_fresh(
        base,
        seed=seed,
        device=device,
        temperature_scale=temperature_scale,
        beta=beta,
        selection_pressure=selection_pressure,
        validate=validate,
    )
    method.name = name
    if learner_loss_cap is not None:
        method.learner_loss_cap = check_positive(learner_loss_cap, "learner_loss_cap")
    if stale:
        if not method.needs_learner_loss:
            raise ValueError(f"{base!r} does not use the learner's loss, so {name!r} means nothing")
        method.learner_scores = "stale"
    return method


def _build_fresh(
    name: str,
    *,
    seed: int,
    device,
    temperature_scale: float,
    beta: float,
    selection_pressure: float,
    validate: bool,
) -> OnlineMethod:
    rng = {"seed": seed, "device": device, "validate": validate}
    variant = DEFAULT_LEARNABILITY if name == "learnability" else name
    if variant == "uniform":
        return OnlineMethod(name, ScoreRule.NONE, UniformSelector(**rng))
    if variant == "hard-learner":
        return OnlineMethod(name, ScoreRule.LEARNER_LOSS, TopKSelector(validate=validate))
    if variant == "easy-reference":
        return OnlineMethod(name, ScoreRule.EASY_REFERENCE, TopKSelector(validate=validate))
    if variant == "learnability-topk":
        return OnlineMethod(name, ScoreRule.LEARNABILITY, TopKSelector(validate=validate))
    if variant == "learnability-sampled":
        sampler = SoftmaxSampler(temperature_scale=temperature_scale, **rng)
        return OnlineMethod(name, ScoreRule.LEARNABILITY, sampler)
    if variant == "selective-backprop":
        return OnlineMethod(
            name, ScoreRule.LEARNER_LOSS, SelectiveBackpropSelector(beta=beta, **rng)
        )
    if variant == "rank":
        selector = RankSelector(selection_pressure=selection_pressure, **rng)
        return OnlineMethod(name, ScoreRule.LEARNER_LOSS, selector)
    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}")
