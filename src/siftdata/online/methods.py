"""Named online-selection methods: a score rule plus a selector, as used by the CLI and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torch import Tensor

from ..scores import learnability
from .base import Selection, Selector
from .greedy import TopKSelector, UniformSelector
from .rank import RankSelector
from .sampled import SoftmaxSampler
from .selective_backprop import SelectiveBackpropSelector

__all__ = ["ScoreRule", "OnlineMethod", "METHOD_NAMES", "DEFAULT_LEARNABILITY", "build_method"]


class ScoreRule(str, Enum):
    """Which per-example score a method ranks by."""

    NONE = "none"  # uniform: nothing is scored
    LEARNER_LOSS = "learner_loss"  # hard learner: the current model's loss
    EASY_REFERENCE = "easy_reference"  # −reference loss
    LEARNABILITY = "learnability"  # learner loss − reference loss (RHO-LOSS)


@dataclass
class OnlineMethod:
    """A score rule and the selector that picks from it; the training loop needs nothing else."""

    name: str
    rule: ScoreRule
    selector: Selector

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


def build_method(
    name: str,
    *,
    seed: int = 0,
    device="cpu",
    temperature_scale: float = 0.5,
    beta: float = 2.0,
    selection_pressure: float = 100.0,
    validate: bool = True,
) -> OnlineMethod:
    """Build a named method.

    Parameters
    ----------
    name:
        One of :data:`METHOD_NAMES`; ``learnability`` means :data:`DEFAULT_LEARNABILITY`.
    seed, device:
        For the selector's own generator.
    temperature_scale:
        τ / std(scores) for the sampled learnability variant.
    beta:
        Selective-backprop exponent.
    selection_pressure:
        Rank-based selection's first/last probability ratio.
    validate:
        Selectors check their scores (one host sync per step).
    """
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
