"""JEST's joint selector: chunked sampling conditional on the chunks already chosen."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_bool, check_int_range, check_positive
from ..core.joint_sampling import FIRST_CHUNK_RULES, GAIN_NORMALISATIONS, joint_sample
from ..core.sampling import sanitise_scores
from .base import GeneratorOwner, Selection

__all__ = ["JointSampler", "DEFAULT_CHUNKS"]

DEFAULT_CHUNKS = 16
"""JEST's number of chunks (the paper's default)."""


class JointSampler(GeneratorOwner):
    """Choose ``k`` of ``B`` pairs jointly from pairwise scores, in chunks (JEST).

    See :func:`siftdata.core.joint_sampling.joint_sample` for the algorithm. ``chunks=1`` is
    independent sampling from the diagonal scores ``S_ii`` (a pair scored on its own).

    Parameters
    ----------
    chunks:
        Number of chunks ``n`` (at most ``k`` at selection time).
    temperature:
        ``τ`` of the softmax over the gains.
    first_chunk:
        ``"independent"`` or ``"uniform"``.
    normalise:
        ``"none"`` or ``"count"`` (see :data:`~siftdata.core.joint_sampling.GAIN_NORMALISATIONS`).
    seed, device:
        The selector's own generator (see :class:`GeneratorOwner`).
    check_values:
        Check every block of scores read for NaN/inf (host syncs).
    """

    def __init__(
        self,
        *,
        chunks: int = DEFAULT_CHUNKS,
        temperature: float = 1.0,
        first_chunk: str = "independent",
        normalise: str = "none",
        seed: int = 0,
        device: torch.device | str = "cpu",
        check_values: bool = False,
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.chunks = check_int_range(chunks, "chunks", low=1)
        self.temperature = check_positive(temperature, "temperature")
        if first_chunk not in FIRST_CHUNK_RULES:
            raise ValueError(f"first_chunk must be one of {FIRST_CHUNK_RULES}, got {first_chunk!r}")
        if normalise not in GAIN_NORMALISATIONS:
            raise ValueError(f"normalise must be one of {GAIN_NORMALISATIONS}, got {normalise!r}")
        self.first_chunk, self.normalise = first_chunk, normalise
        self.check_values = check_bool(check_values, "check_values")

    def select(self, scores: Any, k: int) -> Selection:
        diagonal = scores.diagonal()  # computed once: the first chunk's scores and the stats
        indices = joint_sample(
            scores,
            k,
            chunks=self.chunks,
            temperature=self.temperature,
            first_chunk=self.first_chunk,
            normalise=self.normalise,
            generator=self.generator,
            check_values=self.check_values,
            diagonal=diagonal,
        )
        clean, nonfinite = sanitise_scores(diagonal)  # NaN/inf embeddings give NaN/inf S_ii
        stats = {
            "selected_score_mean": clean.index_select(0, indices).mean(),
            "score_mean": clean.mean(),
            "nonfinite_scores": nonfinite,
        }
        return Selection(indices=indices, stats=stats)

    def __repr__(self) -> str:
        return (
            f"JointSampler(chunks={self.chunks}, temperature={self.temperature}, "
            f"first_chunk={self.first_chunk!r}, normalise={self.normalise!r}, seed={self.seed})"
        )
