"""Selection inside a training step: selectors, scoring policies, the step function, named methods."""

from ..scoring.loss_memory import LossMemory
from .base import GeneratorOwner, JointSelector, PairwiseScores, Selection, Selector
from .greedy import TopKSelector, UniformSelector
from .importance import ImportanceSampler, VarianceReductionGate, paper_tau_threshold
from .methods import (
    DEFAULT_LEARNABILITY,
    LOG_NUM_CLASSES,
    METHOD_NAMES,
    STALE_SUFFIX,
    MethodSpec,
    SelectionConfig,
    SelectionMethod,
    build_method,
    parse_method,
)
from .policies import AlwaysScore, ScoreAfter, ScoringPolicy
from .rank import RankSelector
from .sampled import SoftmaxSampler, draw_without_replacement
from .selective_backprop import SelectiveBackpropSelector
from .step import LossFn, forward_for_scoring, scoring_mode, select_batch

__all__ = [
    "Selection",
    "Selector",
    "JointSelector",
    "PairwiseScores",
    "GeneratorOwner",
    "TopKSelector",
    "UniformSelector",
    "SoftmaxSampler",
    "SelectiveBackpropSelector",
    "RankSelector",
    "ImportanceSampler",
    "draw_without_replacement",
    "ScoringPolicy",
    "VarianceReductionGate",
    "paper_tau_threshold",
    "AlwaysScore",
    "ScoreAfter",
    "LossFn",
    "scoring_mode",
    "forward_for_scoring",
    "select_batch",
    "MethodSpec",
    "SelectionConfig",
    "SelectionMethod",
    "METHOD_NAMES",
    "DEFAULT_LEARNABILITY",
    "STALE_SUFFIX",
    "LOG_NUM_CLASSES",
    "LossMemory",
    "build_method",
    "parse_method",
]
