"""siftdata: choose which examples to train on.

The core is pure functions on tensors (:mod:`siftdata.core.scores`, :mod:`siftdata.core.sampling`), composable
:mod:`siftdata.scoring.scorers` and selectors (:mod:`siftdata.online`), and one step function,
:func:`select_batch`, usable from any training loop. The reference training loop
(:mod:`siftdata.training.loop`), reference cache, compute ledger and benchmarks are built on them. JEST
(:mod:`siftdata.core.pairwise`, :mod:`siftdata.core.joint_sampling`) selects contrastive pairs jointly.
Unbiased selection (:mod:`siftdata.core.unbiased`) weights sampled selections so the gradient stays
unbiased: importance sampling with its τ gate, and epoch pruning (:mod:`siftdata.online.infobatch`).
"""

from . import data, ledger, models, reference, store
from .core import grad_norms, unbiased
from .core.joint_sampling import joint_sample
from .core.pairwise import (
    DensePairScores,
    EmbeddingPairScores,
    PairEmbeddings,
    per_example_sigmoid_loss,
    sigmoid_pair_losses,
)
from .core.sampling import (
    gumbel_top_k,
    gumbel_top_k_with_threshold,
    sample_with_replacement,
    top_k,
    uniform_without_replacement,
)
from .core.scores import (
    entropy,
    grad_norm_bound,
    learnability,
    least_confidence,
    margin,
    mse_grad_norm_bound,
    per_example_loss,
    sigmoid_grad_norm_bound,
)
from .core.unbiased import importance_weights, variance_reduction_tau, without_replacement_weights
from .data import WithIndex
from .online import (
    METHOD_NAMES,
    AlwaysScore,
    ImportanceSampler,
    JointSelector,
    LossMemory,
    PairwiseScores,
    RankSelector,
    ScoreAfter,
    ScoringPolicy,
    Selection,
    SelectionConfig,
    SelectionMethod,
    SelectiveBackpropSelector,
    Selector,
    SoftmaxSampler,
    TopKSelector,
    UniformSelector,
    VarianceReductionGate,
    build_method,
    forward_for_scoring,
    parse_method,
    select_batch,
)
from .online.approximation import LowResolution, MultiResolution
from .online.infobatch import InfoBatchSampler, InfoBatchSource
from .online.joint import JointSampler
from .online.pair_methods import PAIR_METHOD_NAMES, PairSelectionConfig, build_pair_method
from .reference.embeddings import ReferenceEmbeddings, load_reference_embeddings
from .reference.losses import (
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
)
from .scoring import scorers
from .scoring.pair_scorers import PairScorer
from .scoring.scorers import (
    Entropy,
    GradNormBound,
    Learnability,
    LearnerLoss,
    LeastConfidence,
    Margin,
    Need,
    Negated,
    ReferenceLoss,
    RememberedLoss,
    Scorer,
    ScoringBatch,
)
from .store import dataset_fingerprint
from .training.sources import BatchSource, SuperBatchStream, WeightedSource

__version__ = "0.1.0"

__all__ = [
    "joint_sample",
    "JointSampler",
    "LowResolution",
    "MultiResolution",
    "PAIR_METHOD_NAMES",
    "PairSelectionConfig",
    "build_pair_method",
    "PairScorer",
    "DensePairScores",
    "EmbeddingPairScores",
    "PairEmbeddings",
    "per_example_sigmoid_loss",
    "sigmoid_pair_losses",
    "ReferenceEmbeddings",
    "load_reference_embeddings",
    # reference losses: train, compute, cache by id
    "train_reference_model",
    "compute_losses",
    "save_reference_losses",
    "load_reference_losses",
    "dataset_fingerprint",
    "WithIndex",
    "data",
    "ledger",
    "models",
    "reference",
    "scorers",
    "store",
    "unbiased",
    "grad_norms",
    # pure per-example scores
    "per_example_loss",
    "learnability",
    "grad_norm_bound",
    "sigmoid_grad_norm_bound",
    "mse_grad_norm_bound",
    "entropy",
    "least_confidence",
    "margin",
    # pure sampling
    "top_k",
    "gumbel_top_k",
    "gumbel_top_k_with_threshold",
    "sample_with_replacement",
    "uniform_without_replacement",
    # unbiased weights
    "importance_weights",
    "without_replacement_weights",
    "variance_reduction_tau",
    # scorers
    "Need",
    "ScoringBatch",
    "Scorer",
    "LearnerLoss",
    "RememberedLoss",
    "ReferenceLoss",
    "Negated",
    "Learnability",
    "GradNormBound",
    "Entropy",
    "LeastConfidence",
    "Margin",
    # selectors, policies, the step
    "Selection",
    "Selector",
    "JointSelector",
    "PairwiseScores",
    "TopKSelector",
    "UniformSelector",
    "SoftmaxSampler",
    "SelectiveBackpropSelector",
    "RankSelector",
    "ImportanceSampler",
    "ScoringPolicy",
    "AlwaysScore",
    "ScoreAfter",
    "VarianceReductionGate",
    # batch sources
    "BatchSource",
    "WeightedSource",
    "SuperBatchStream",
    "InfoBatchSampler",
    "InfoBatchSource",
    "forward_for_scoring",
    "select_batch",
    # named methods
    "LossMemory",
    "METHOD_NAMES",
    "SelectionConfig",
    "SelectionMethod",
    "build_method",
    "parse_method",
]
