"""Scorers for contrastive pairs: JEST's pairwise score matrix from learner and cached reference embeddings.

A :class:`PairScorer` turns the learner's embeddings of a super-batch (one no-grad forward) and
the reference model's embeddings looked up by example id (:mod:`siftdata.reference.embeddings`)
into :class:`~siftdata.online.PairwiseScores` for a joint selector. Matrix-free by default: the
``B × B`` matrix is never formed, the sampler reads it block by block.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from .._validation import check_bool
from ..core.pairwise import (
    DensePairScores,
    EmbeddingPairScores,
    PairEmbeddings,
    check_criterion,
)
from .scorers import Need, ScoringBatch

__all__ = ["EmbeddingLookup", "PairScorer"]


class EmbeddingLookup(Protocol):
    """Cached embeddings by example id (e.g. :class:`~siftdata.reference.embeddings.ReferenceEmbeddings`)."""

    def lookup(self, ids: Tensor) -> PairEmbeddings: ...

    def check_ids(self, ids: Tensor) -> None: ...


class PairScorer:
    """JEST's score matrix ``S`` of a super-batch of pairs, for one criterion.

    Parameters
    ----------
    criterion:
        ``"hard-learner"``, ``"easy-reference"`` or ``"learnability"`` (see
        :mod:`siftdata.core.pairwise`).
    reference:
        The reference model's cached embeddings by example id (criteria that use it).
    matrix_free:
        Serve ``S`` block by block from the embeddings (memory ``O(B·(chunk + d))``); ``False``
        materialises the ``B × B`` matrix (the same selections, more memory).
    """

    remembers = False

    def __init__(
        self, criterion: str, *, reference: EmbeddingLookup | None = None, matrix_free: bool = True
    ) -> None:
        check_criterion(criterion)
        if criterion != "hard-learner" and reference is None:
            raise ValueError(f"criterion {criterion!r} needs the reference's cached embeddings")
        self.criterion = criterion
        self.reference = reference if criterion != "hard-learner" else None
        self.matrix_free = check_bool(matrix_free, "matrix_free")
        self.needs = frozenset(
            {Need.IDS} | ({Need.OUTPUTS} if criterion != "easy-reference" else set())
        )

    def __call__(self, batch: ScoringBatch) -> EmbeddingPairScores | DensePairScores:
        learner = None
        if Need.OUTPUTS in self.needs:
            if not isinstance(batch.outputs, PairEmbeddings):
                raise ValueError(
                    f"{self!r} needs the learner's PairEmbeddings as the batch outputs (a two-tower "
                    f"model's forward), got {type(batch.outputs).__name__}"
                )
            learner = batch.outputs
        reference = self.reference.lookup(batch.ids) if self.reference is not None else None
        if self.matrix_free:
            return EmbeddingPairScores(self.criterion, learner=learner, reference=reference)
        return DensePairScores.from_embeddings(self.criterion, learner=learner, reference=reference)

    def observe(self, ids: Tensor, losses: Tensor) -> None:
        return None

    def check_ids(self, ids: Tensor) -> None:
        if self.reference is not None:
            self.reference.check_ids(ids)

    def check_missing(self) -> None:
        """Raise ``ValueError`` if ids without cached embeddings were looked up (one sync)."""
        method = getattr(self.reference, "check_missing", None)
        if callable(method):
            method()

    def state_dict(self) -> dict[str, Any]:
        self.check_missing()
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return (
            f"PairScorer({self.criterion!r}, reference={self.reference!r}, "
            f"matrix_free={self.matrix_free})"
        )
