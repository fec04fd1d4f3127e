"""siftdata: choose which examples to train on.

The core is pure functions on tensors (:mod:`siftdata.scores`, :mod:`siftdata.sampling`) and small
selectors (:mod:`siftdata.online`); the training loop, reference cache, compute ledger and
benchmarks are built on them.
"""

from . import data, ledger, models, reference, store
from .online import (
    METHOD_NAMES,
    LossMemory,
    RankSelector,
    Selection,
    SelectiveBackpropSelector,
    Selector,
    SoftmaxSampler,
    TopKSelector,
    UniformSelector,
    build_method,
)
from .sampling import gumbel_top_k, sample_with_replacement, top_k, uniform_without_replacement
from .scores import (
    entropy,
    grad_norm_bound,
    learnability,
    least_confidence,
    margin,
    per_example_loss,
)

__version__ = "0.1.0"

__all__ = [
    "data",
    "ledger",
    "models",
    "reference",
    "store",
    "per_example_loss",
    "learnability",
    "grad_norm_bound",
    "entropy",
    "least_confidence",
    "margin",
    "top_k",
    "gumbel_top_k",
    "sample_with_replacement",
    "uniform_without_replacement",
    "Selection",
    "Selector",
    "TopKSelector",
    "UniformSelector",
    "SoftmaxSampler",
    "SelectiveBackpropSelector",
    "RankSelector",
    "LossMemory",
    "METHOD_NAMES",
    "build_method",
]
