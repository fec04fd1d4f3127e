"""Named online-selection methods: a scorer, a selector and a scoring policy, built from a name.

``parse_method("learnability+stale")`` describes a method without any data (for validating options
up front); :func:`build_method` assembles it from a reference table and the pool's ids. The pieces
are the public :mod:`siftdata.scoring.scorers`, selectors and policies: a method the names do not cover is
built by hand as ``SelectionMethod(name, scorer=..., selector=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .._config import check_float_field, check_int_field, option
from .._validation import check_int_range
from ..scoring.loss_memory import LossMemory
from ..scoring.scorers import (
    GradNormBound,
    Learnability,
    LearnerLoss,
    Negated,
    ReferenceLoss,
    RememberedLoss,
    Scorer,
    needs_forward,
)
from ..store import ScoreTable
from .approximation import MultiResolution
from .base import JointSelector, Selector
from .greedy import TopKSelector
from .importance import ImportanceSampler, VarianceReductionGate, paper_tau_threshold
from .per_shard import PerShardSelector
from .policies import AlwaysScore, ScoreAfter, ScoringPolicy
from .rank import RankSelector
from .sampled import DEFAULT_TEMPERATURE_SCALE, SoftmaxSampler
from .selective_backprop import SelectiveBackpropSelector
from .step import ScoringForward

__all__ = [
    "METHOD_NAMES",
    "DEFAULT_LEARNABILITY",
    "STALE_SUFFIX",
    "LOG_NUM_CLASSES",
    "MethodSpec",
    "parse_method",
    "SelectionConfig",
    "SelectionMethod",
    "build_method",
]

# The variant `learnability` stands for; see docs/benchmarks.md for why.
DEFAULT_LEARNABILITY = "learnability-sampled"

STALE_SUFFIX = "+stale"
"""Appended to a method that ranks by learner loss, it scores with each example's loss from its
last training step (a :class:`LossMemory`) instead of a forward over the super-batch."""

LOG_NUM_CLASSES = "logC"
"""``learner_loss_cap`` value meaning ``log(number of classes)``, resolved when the method is built."""

# base name -> (score rule, selector)
_BASE_METHODS = {
    "uniform": ("none", "uniform"),
    "hard-learner": ("learner-loss", "top-k"),
    "easy-reference": ("easy-reference", "top-k"),
    "learnability-topk": ("learnability", "top-k"),
    "learnability-sampled": ("learnability", "softmax"),
    "learnability-unbiased": ("learnability", "softmax-unbiased"),
    "importance": ("grad-norm", "importance"),
    "importance-always": ("grad-norm", "importance"),
    "selective-backprop": ("learner-loss", "selective-backprop"),
    "rank": ("learner-loss", "rank"),
}
_GATED = frozenset({"importance"})  # scored only while the τ gate says it pays
METHOD_NAMES = (
    "uniform",
    "hard-learner",
    "easy-reference",
    "learnability",
    "learnability-topk",
    "learnability-sampled",
    "learnability-unbiased",
    "importance",
    "importance-always",
    "selective-backprop",
    "rank",
)
"""The named methods (``learnability`` means :data:`DEFAULT_LEARNABILITY`); any that ranks by
learner loss also takes :data:`STALE_SUFFIX`. ``importance`` samples ∝ the gradient-norm bound
while its τ gate is on; ``importance-always`` never gates."""


@dataclass(frozen=True)
class MethodSpec:
    """What a method name means, without data: its score rule, selector and learner-loss source."""

    name: str
    rule: str
    """``none``, ``learner-loss``, ``easy-reference``, ``learnability`` or ``grad-norm``."""
    selector: str
    """``uniform``, ``top-k``, ``softmax``, ``softmax-unbiased``, ``importance``,
    ``selective-backprop`` or ``rank``."""
    stale: bool = False
    gated: bool = False
    """Whether a τ gate decides, step by step, whether to score (importance sampling)."""

    @property
    def selects(self) -> bool:
        """Whether the method scores a super-batch at all (uniform does not)."""
        return self.rule != "none"

    @property
    def uses_reference(self) -> bool:
        return self.rule in ("easy-reference", "learnability")

    @property
    def uses_learner_loss(self) -> bool:
        return self.rule in ("learner-loss", "learnability")

    @property
    def scores_fresh(self) -> bool:
        """Whether each step runs a learner forward over the super-batch."""
        return self.uses_learner_loss and not self.stale


def parse_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` of a method name; ``ValueError`` listing the names if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"a method name must be a string, got {name!r}")
    stale = name.endswith(STALE_SUFFIX)
    base = name[: -len(STALE_SUFFIX)] if stale else name
    variant = DEFAULT_LEARNABILITY if base == "learnability" else base
    if variant not in _BASE_METHODS:
        raise ValueError(
            f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)} (methods that rank "
            f"by learner loss also take the suffix {STALE_SUFFIX})"
        )
    rule, selector = _BASE_METHODS[variant]
    spec = MethodSpec(name, rule, selector, stale, gated=variant in _GATED)
    if stale and not spec.uses_learner_loss:
        raise ValueError(f"{base!r} does not use the learner's loss, so {name!r} means nothing")
    return spec


def _parse_cap(value: Any) -> float | str | None:
    if value is None or value == LOG_NUM_CLASSES:
        return value
    return check_float_field(value, "learner_loss_cap", low=0.0, low_open=True)


@dataclass
class SelectionConfig:
    """Options of the named methods (defaults live here and nowhere else)."""

    temperature_scale: float = option(
        DEFAULT_TEMPERATURE_SCALE, "τ / std(super-batch scores) of sampled learnability"
    )
    beta: float = option(2.0, "selective-backprop's exponent on the loss percentile")
    selection_pressure: float = option(
        100.0, "rank-based selection's ratio of first to last rank's probability"
    )
    learner_loss_cap: float | str | None = option(
        LOG_NUM_CLASSES,
        "learnability clips the learner loss here: a number, 'logC' (log of the number of "
        "classes: a confidently wrong learner is mostly looking at a wrong label) or 'none'",
    )
    uniform_steps: int = option(
        0, "train uniformly, without scoring, for this many steps before selecting"
    )
    importance_smoothing: float = option(
        0.0, "importance sampling draws ∝ bound + this (keeps every example drawable)"
    )
    tau_threshold: float | None = option(
        None, "importance sampling is on while the smoothed τ exceeds this (default (B+3b)/(3b))"
    )
    tau_momentum: float = option(0.9, "momentum of τ's moving average")
    local_shards: int = option(
        1,
        "select per shard as W ranks would each on their own share (what per-rank tools do), "
        "k/W from each of W shares of the super-batch; 1: one global selection",
    )

    def __post_init__(self) -> None:
        check_float_field(self.temperature_scale, "temperature_scale", low=0.0, low_open=True)
        check_float_field(self.beta, "beta", low=0.0, low_open=True)
        check_float_field(self.selection_pressure, "selection_pressure", low=1.0)
        self.learner_loss_cap = _parse_cap(self.learner_loss_cap)
        check_int_field(self.uniform_steps, "uniform_steps", low=0)
        check_float_field(self.importance_smoothing, "importance_smoothing", low=0.0)
        if self.tau_threshold is not None:
            check_float_field(self.tau_threshold, "tau_threshold", low=1.0, low_open=True)
        check_float_field(self.tau_momentum, "tau_momentum", low=0.0)
        if not self.tau_momentum < 1:
            raise ValueError(f"tau_momentum must be in [0, 1), got {self.tau_momentum}")
        check_int_field(self.local_shards, "local_shards", low=1)

    def cap_for(self, num_classes: int | None) -> float | None:
        """The learner-loss cap as a number (``logC`` resolved with ``num_classes``)."""
        if self.learner_loss_cap != LOG_NUM_CLASSES:
            return self.learner_loss_cap
        if num_classes is None:
            raise ValueError("learner_loss_cap='logC' needs num_classes to resolve it")
        return math.log(check_int_range(num_classes, "num_classes", low=2))


@dataclass
class SelectionMethod:
    """A scorer, a selector and a scoring policy; ``scorer=None`` is uniform training."""

    name: str
    scorer: Scorer | None = None
    selector: Selector | JointSelector | None = None
    policy: ScoringPolicy = field(default_factory=AlwaysScore)
    scoring_forward: ScoringForward | None = None
    """Replaces ``model(inputs)`` in the scoring pass (e.g. :class:`LowResolution`)."""
    train_forward: MultiResolution | None = None
    """Computes the training losses of a selected batch (e.g. :class:`MultiResolution`)."""

    def __post_init__(self) -> None:
        if (self.scorer is None) != (self.selector is None):
            raise ValueError("give both a scorer and a selector, or neither (uniform)")

    @property
    def selects(self) -> bool:
        """Whether the method scores super-batches at all."""
        return self.scorer is not None

    @property
    def needs_forward(self) -> bool:
        """Whether scoring runs a learner forward over the super-batch."""
        return self.scorer is not None and needs_forward(self.scorer)

    def describe(self) -> dict[str, str]:
        """What the method is, option by option (no state, no device): a resumed run must match."""
        described = {
            "name": self.name,
            "scorer": _describe(self.scorer),
            "selector": _describe(self.selector),
            "policy": _describe(self.policy),
        }
        for part in ("scoring_forward", "train_forward"):
            if getattr(self, part) is not None:
                described[part] = _describe(getattr(self, part))
        return described

    def state_dict(self) -> dict[str, Any]:
        if self.scorer is None:
            return {}
        return {
            "scorer": self.scorer.state_dict(),
            "selector": self.selector.state_dict(),
            "policy": self.policy.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scorer is None:
            return
        self.scorer.load_state_dict(state["scorer"])
        self.selector.load_state_dict(state["selector"])
        self.policy.load_state_dict(state["policy"])


def _describe(part: Any) -> str:
    """``repr(part)``, or its class name where the repr is object's (a memory address differs
    from process to process, so it could never match on resume)."""
    if part is not None and type(part).__repr__ is object.__repr__:
        return type(part).__qualname__
    return repr(part)


def _learner_scorer(spec: MethodSpec, example_ids, num_classes, device) -> Scorer:
    if not spec.stale:
        return LearnerLoss()
    if example_ids is None or num_classes is None:
        raise ValueError(f"{spec.name!r} remembers losses by id: give example_ids and num_classes")
    memory = LossMemory(example_ids, initial=math.log(max(num_classes, 2)), device=device)
    return RememberedLoss(memory)


def _scorer(spec, config, reference, example_ids, num_classes, device) -> Scorer | None:
    if spec.uses_reference and reference is None:
        raise ValueError(f"method {spec.name!r} needs reference losses (a ScoreTable by id)")
    if spec.rule == "easy-reference":
        return Negated(_reference_scorer(reference))
    if spec.rule == "none":
        return None
    if spec.rule == "grad-norm":
        return GradNormBound()
    learner = _learner_scorer(spec, example_ids, num_classes, device)
    if spec.rule == "learner-loss":
        return learner
    cap = config.cap_for(num_classes)
    return Learnability(learner, _reference_scorer(reference), learner_loss_cap=cap)


def _reference_scorer(reference: ScoreTable | Scorer) -> Scorer:
    """A cached table looked up by id, or a scorer of its own (e.g. a live reference forward)."""
    return reference if isinstance(reference, Scorer) else ReferenceLoss(reference)


def _selector(spec: MethodSpec, config: SelectionConfig, seed: int, device) -> Selector | None:
    rng = {"seed": seed, "device": device}
    if spec.selector == "top-k":
        return TopKSelector()
    if spec.selector in ("softmax", "softmax-unbiased"):
        unbiased = spec.selector == "softmax-unbiased"
        return SoftmaxSampler(temperature_scale=config.temperature_scale, unbiased=unbiased, **rng)
    if spec.selector == "importance":
        return ImportanceSampler(smoothing=config.importance_smoothing, **rng)
    if spec.selector == "selective-backprop":
        return SelectiveBackpropSelector(beta=config.beta, **rng)
    if spec.selector == "rank":
        return RankSelector(selection_pressure=config.selection_pressure, **rng)
    return None  # uniform: nothing to select from, the loop draws b examples


def build_method(
    name: str | MethodSpec,
    *,
    config: SelectionConfig | None = None,
    reference: ScoreTable | Scorer | None = None,
    example_ids: int | Tensor | None = None,
    num_classes: int | None = None,
    super_batch_factor: float | None = None,
    seed: int = 0,
    device="cpu",
) -> SelectionMethod:
    """Build a named method.

    Parameters
    ----------
    name:
        One of :data:`METHOD_NAMES` (``learnability`` means :data:`DEFAULT_LEARNABILITY`),
        optionally with :data:`STALE_SUFFIX`, or a parsed :class:`MethodSpec`.
    config:
        Method options (:class:`SelectionConfig`; its defaults when omitted).
    reference:
        Reference losses by example id, for methods that use them; or a :class:`Scorer` that
        gives them itself (a live reference forward, for streams without ids).
    example_ids:
        The pool's ids (or their number, for ids ``0 … N−1``), for ``+stale`` methods.
    num_classes:
        For the ``logC`` loss cap and the stale memory's initial loss.
    super_batch_factor:
        ``B / b``, for importance sampling's default τ threshold ``(B + 3b)/(3b)``.
    seed, device:
        The selector's own generator (and where the loss memory lives).
    """
    spec = name if isinstance(name, MethodSpec) else parse_method(name)
    config = config or SelectionConfig()
    scorer = _scorer(spec, config, reference, example_ids, num_classes, device)
    if scorer is None:
        return SelectionMethod(spec.name)
    selector = _selector(spec, config, seed, device)
    if config.local_shards > 1 and selector is not None:
        selector = PerShardSelector(selector, config.local_shards)
    return SelectionMethod(spec.name, scorer, selector, _policy(spec, config, super_batch_factor))


def _policy(spec: MethodSpec, config: SelectionConfig, super_batch_factor) -> ScoringPolicy:
    if spec.gated:
        threshold = config.tau_threshold
        if threshold is None:
            if super_batch_factor is None:
                raise ValueError(
                    f"{spec.name!r} needs super_batch_factor (B/b) for its default τ threshold "
                    "(B + 3b)/(3b), or an explicit tau_threshold"
                )
            threshold = paper_tau_threshold(super_batch_factor, 1.0)  # B/b over b/b
        return VarianceReductionGate(threshold=threshold, momentum=config.tau_momentum)
    return ScoreAfter(config.uniform_steps) if config.uniform_steps else AlwaysScore()
