"""Selectors used inside a training step: score a super-batch, keep the best ``k``."""

from .base import GeneratorOwner, Selection, Selector
from .greedy import TopKSelector, UniformSelector
from .methods import (
    DEFAULT_LEARNABILITY,
    METHOD_NAMES,
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
    "build_method",
]
