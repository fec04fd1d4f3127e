"""Selectors used inside a training step: score a super-batch, keep the best ``k``."""

from .base import GeneratorOwner, Selection, Selector
from .greedy import TopKSelector, UniformSelector
from .loss_memory import LossMemory
from .methods import (
    DEFAULT_LEARNABILITY,
    LEARNER_SCORES,
    METHOD_NAMES,
    STALE_SUFFIX,
    OnlineMethod,
    ScoreRule,
    build_method,
)
from .rank import RankSelector
from .sampled import SoftmaxSampler
from .selective_backprop import SelectiveBackpropSelector

__all__ = [
    "Selection",
    "Selector",
    "GeneratorOwner",
    "TopKSelector",
    "UniformSelector",
    "SoftmaxSampler",
    "SelectiveBackpropSelector",
    "RankSelector",
    "ScoreRule",
    "OnlineMethod",
    "METHOD_NAMES",
    "DEFAULT_LEARNABILITY",
    "LEARNER_SCORES",
    "STALE_SUFFIX",
    "LossMemory",
    "build_method",
]
