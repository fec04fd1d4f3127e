"""Named selection methods for contrastive pairs (JEST and its baselines), built from a name.

======================  =====================================================================
``uniform``             no selection: ``b`` random pairs per step
``hard-learner``        joint sampling (chunks) from ``S = L_learner``
``easy-reference``      joint sampling from ``S = −L_reference`` (no learner forward at all)
``learnability``        *independent* sampling from the diagonal learnability ``S_ii`` (one chunk)
``jest``                joint sampling from ``S = L_learner − L_reference`` (JEST)
``jest-flexi``          ``jest`` scored at low resolution, trained partly at low resolution
======================  =====================================================================

``learnability`` and ``jest`` differ only in the chunking, so their gap measures what *joint*
selection adds over scoring each pair on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._config import check_choice, check_float_field, check_int_field, option
from .._validation import check_bool, check_fraction
from ..core.joint_sampling import FIRST_CHUNK_RULES, GAIN_NORMALISATIONS
from ..scoring.pair_scorers import EmbeddingLookup, PairScorer
from .approximation import LowResolution, MultiResolution
from .joint import DEFAULT_CHUNKS, JointSampler
from .methods import SelectionMethod

__all__ = [
    "check_pair_method",
    "PAIR_METHOD_NAMES",
    "PairSelectionConfig",
    "pair_method_uses_reference",
    "build_pair_method",
]

PAIR_METHOD_NAMES = (
    "uniform",
    "hard-learner",
    "easy-reference",
    "learnability",
    "jest",
    "jest-flexi",
)
_CRITERION = {
    "hard-learner": "hard-learner",
    "easy-reference": "easy-reference",
    "learnability": "learnability",
    "jest": "learnability",
    "jest-flexi": "learnability",
}


def check_pair_method(name: str) -> str:
    if name not in PAIR_METHOD_NAMES:
        raise ValueError(
            f"unknown pair method {name!r}; choose from {', '.join(PAIR_METHOD_NAMES)}"
        )
    return name


def pair_method_uses_reference(name: str) -> bool:
    return check_pair_method(name) not in ("uniform", "hard-learner")


@dataclass
class PairSelectionConfig:
    """Options of the pair methods (defaults live here and nowhere else)."""

    chunks: int = option(DEFAULT_CHUNKS, "JEST's number of chunks n")
    joint_temperature: float = option(1.0, "τ of the softmax over the gains (and over S_ii)")
    first_chunk: str = option(
        "independent", "how JEST's first chunk is drawn", choices=FIRST_CHUNK_RULES
    )
    normalise: str = option(
        "none", "gain normalisation: none (JEST) or count (÷(2|A|+1))", choices=GAIN_NORMALISATIONS
    )
    matrix_free: bool = option(True, "serve S block by block from embeddings, never B×B")
    score_factor: int = option(2, "jest-flexi scores at 1/factor resolution (2: 28×28 → 14×14)")
    early_exit: bool = option(False, "jest-flexi also scores through the early-exit image head")
    low_res_share: float = option(0.5, "jest-flexi's share of each batch trained at low resolution")

    def __post_init__(self) -> None:
        check_int_field(self.chunks, "chunks", low=1)
        check_float_field(self.joint_temperature, "joint_temperature", low=0.0, low_open=True)
        check_choice(self.first_chunk, "first_chunk", FIRST_CHUNK_RULES)
        check_choice(self.normalise, "normalise", GAIN_NORMALISATIONS)
        check_bool(self.matrix_free, "matrix_free")
        check_int_field(self.score_factor, "score_factor", low=2)
        check_bool(self.early_exit, "early_exit")
        check_fraction(self.low_res_share, "low_res_share", low_open=True, high_open=True)


def build_pair_method(
    name: str,
    *,
    config: PairSelectionConfig | None = None,
    reference: EmbeddingLookup | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> SelectionMethod:
    """Build one of :data:`PAIR_METHOD_NAMES` (see the module docstring)."""
    check_pair_method(name)
    if name == "uniform":
        return SelectionMethod(name)
    config = config or PairSelectionConfig()
    criterion = _CRITERION[name]
    scorer = PairScorer(criterion, reference=reference, matrix_free=config.matrix_free)
    independent = name == "learnability"  # one chunk drawn from S_ii, whatever first_chunk says
    selector = JointSampler(
        chunks=1 if independent else config.chunks,
        temperature=config.joint_temperature,
        first_chunk="independent" if independent else config.first_chunk,
        normalise=config.normalise,
        seed=seed,
        device=device,
    )
    if name != "jest-flexi":
        return SelectionMethod(name, scorer, selector)
    return SelectionMethod(
        name,
        scorer,
        selector,
        scoring_forward=LowResolution(factor=config.score_factor, early_exit=config.early_exit),
        train_forward=MultiResolution(
            share=config.low_res_share, factor=config.score_factor, early_exit=config.early_exit
        ),
    )
