"""Pairwise (contrastive) losses and score matrices: the sigmoid (SigLIP) pair loss and JEST's criteria.

For ``B`` image–text pairs with L2-normalised embeddings ``x_i`` (images) and ``y_j`` (texts), a
temperature ``t > 0`` and a bias ``β``, the pair-loss matrix is

    L_ij = −log σ(z_ij · (t·⟨x_i, y_j⟩ + β)),    z_ii = +1 (a true pair),  z_ij = −1 otherwise,

and the SigLIP batch loss is ``(1/B) Σ_ij L_ij``. JEST scores a super-batch with a ``B × B`` matrix
``S`` built from the learner's and the reference model's matrices on the same pairs:

    hard-learner:    S = L_learner
    easy-reference:  S = −L_reference
    learnability:    S = L_learner − L_reference

:class:`EmbeddingPairScores` serves any block of ``S`` from the embeddings on demand (never the
``B × B`` matrix); :class:`DensePairScores` holds a materialised ``S``. Both are
:class:`~siftdata.online.PairwiseScores` for the joint sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CRITERIA",
    "check_criterion",
    "PairEmbeddings",
    "sigmoid_pair_losses",
    "sigmoid_pair_loss_block",
    "per_example_sigmoid_loss",
    "pair_score_matrix",
    "DensePairScores",
    "EmbeddingPairScores",
]

CRITERIA = ("hard-learner", "easy-reference", "learnability")
"""Pairwise scoring criteria, as in JEST: which of the learner and reference matrices ``S`` uses."""


@dataclass(frozen=True)
class PairEmbeddings:
    """A two-tower model's output for ``B`` pairs: what the sigmoid pair loss needs.

    Attributes
    ----------
    image, text:
        ``(B, d)`` embeddings, L2-normalised by the model.
    scale:
        0-d tensor ``t > 0``, the learnt temperature (SigLIP: ``exp`` of a learnt log-scale).
    bias:
        0-d tensor ``β``, the learnt bias.
    """

    image: Tensor
    text: Tensor
    scale: Tensor
    bias: Tensor

    def __post_init__(self) -> None:
        if self.image.dim() != 2 or self.text.dim() != 2:
            raise ValueError(
                "image and text embeddings must be 2-d (pairs, width), got shapes "
                f"{tuple(self.image.shape)} and {tuple(self.text.shape)}"
            )
        if self.image.shape != self.text.shape:
            raise ValueError(
                "image and text embeddings must have the same count and width, got "
                f"{tuple(self.image.shape)} and {tuple(self.text.shape)}"
            )
        if self.scale.numel() != 1 or self.bias.numel() != 1:
            raise ValueError("scale and bias must be single values (0-d tensors)")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def index_select(self, index: Tensor) -> PairEmbeddings:
        """The embeddings of the pairs at ``index`` (same scale and bias)."""
        return PairEmbeddings(
            self.image.index_select(0, index),
            self.text.index_select(0, index),
            self.scale,
            self.bias,
        )

    def detach(self) -> PairEmbeddings:
        return PairEmbeddings(
            self.image.detach(), self.text.detach(), self.scale.detach(), self.bias.detach()
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PairEmbeddings:
        return PairEmbeddings(*(t.to(device, dtype) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.image, self.text, self.scale, self.bias


def _dot_block(image: Tensor, text: Tensor) -> Tensor:
    """``image @ text.T``, through the matrix-matrix kernel even for a single row or column.

    BLAS uses a different (matrix-vector) kernel for one row, whose rounding differs more from
    the blocked product's; padding to two rows keeps blocks on the same kernel. Blocks of
    different shapes can still round differently in the last bit (BLAS picks its blocking by
    shape), so matrix-free and dense selections are the same except at a near-tie of two Gumbel
    keys, which the tests never met.
    """
    if image.shape[0] == 1:
        return (image.expand(2, -1) @ text.T)[:1]
    if text.shape[0] == 1:
        return (image @ text.expand(2, -1).T)[:, :1]
    return image @ text.T


def sigmoid_pair_loss_block(
    image: Tensor, text: Tensor, *, scale: Tensor, bias: Tensor, positive: Tensor
) -> Tensor:
    """``L`` for a block of rows (images) and columns (texts): ``softplus(−z·(t·⟨x, y⟩ + β))``.

    Parameters
    ----------
    image:
        ``(r, d)`` image embeddings of the block's rows.
    text:
        ``(c, d)`` text embeddings of the block's columns.
    scale, bias:
        ``t`` and ``β`` (0-d tensors).
    positive:
        ``(r, c)`` bool, True where the row and the column are the same pair (``z = +1``).
    """
    logits = _dot_block(image, text) * scale + bias
    signs = torch.where(positive, 1.0, -1.0).to(logits.dtype)
    return F.softplus(-signs * logits)


def poison_non_finite_pairs(emb: PairEmbeddings) -> PairEmbeddings:
    """The embeddings with every row of a pair that holds a NaN or ±inf (in either tower) set to
    NaN, on the device with no sync: an inf coordinate can give a finite, plausible score (the
    loss of an infinite logit is 0), so the whole pair is marked for the samplers to rank last
    and count."""
    good = torch.isfinite(emb.image).all(dim=1) & torch.isfinite(emb.text).all(dim=1)
    bad = ~good[:, None]
    image, text = emb.image.masked_fill(bad, math.nan), emb.text.masked_fill(bad, math.nan)
    return PairEmbeddings(image, text, emb.scale, emb.bias)


def sigmoid_pair_losses(emb: PairEmbeddings) -> Tensor:
    """The ``B × B`` sigmoid pair-loss matrix ``L`` (row ``i``: image ``i`` against every text)."""
    n = len(emb)
    eye = torch.eye(n, dtype=torch.bool, device=emb.image.device)
    return sigmoid_pair_loss_block(
        emb.image, emb.text, scale=emb.scale, bias=emb.bias, positive=eye
    )


def per_example_sigmoid_loss(outputs: PairEmbeddings, labels: Any = None) -> Tensor:
    """Per-pair share of the SigLIP loss, for the training loop's loss-function slot.

    ``ℓ_i = ½ (Σ_j L_ij + Σ_j L_ji)``: pair ``i``'s image against every text and its text against
    every image, so ``mean_i ℓ_i`` is the SigLIP batch loss ``(1/B) Σ_ij L_ij``. ``labels`` is
    ignored (a pair is its own target).
    """
    del labels
    losses = sigmoid_pair_losses(outputs)
    return 0.5 * (losses.sum(dim=1) + losses.sum(dim=0))


def check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")


def _needs(criterion: str) -> tuple[bool, bool]:
    """Whether ``criterion`` uses the learner's and the reference's losses."""
    return criterion != "easy-reference", criterion != "hard-learner"


def pair_score_matrix(
    criterion: str,
    *,
    learner: PairEmbeddings | None = None,
    reference: PairEmbeddings | None = None,
) -> Tensor:
    """The dense ``B × B`` score matrix ``S`` for ``criterion`` (see the module docstring)."""
    return DensePairScores.from_embeddings(criterion, learner=learner, reference=reference).matrix


class DensePairScores:
    """A materialised ``B × B`` score matrix as :class:`~siftdata.online.PairwiseScores`.

    Memory is ``O(B²)``; use :class:`EmbeddingPairScores` for large super-batches.
    """

    def __init__(self, matrix: Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"a pairwise score matrix must be square (B, B), got {tuple(matrix.shape)}"
            )
        if not matrix.is_floating_point():
            raise ValueError(f"pairwise scores must be floating point, got {matrix.dtype}")
        self.matrix = matrix

    @classmethod
    def from_embeddings(
        cls,
        criterion: str,
        *,
        learner: PairEmbeddings | None = None,
        reference: PairEmbeddings | None = None,
    ) -> DensePairScores:
        """``S`` for ``criterion``, computed in full from the embeddings."""
        free = EmbeddingPairScores(criterion, learner=learner, reference=reference)
        matrix = free.rows(torch.arange(free.size, device=free.device))
        matrix.diagonal().copy_(free.diagonal())  # the matrix-free diagonal, bit for bit
        return cls(matrix)

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def diagonal(self) -> Tensor:
        return self.matrix.diagonal()

    def rows(self, index: Tensor) -> Tensor:
        return self.matrix.index_select(0, index)

    def columns(self, index: Tensor) -> Tensor:
        return self.matrix.index_select(1, index)


class EmbeddingPairScores:
    """JEST's score matrix ``S`` served block by block from embeddings: never ``B × B`` in memory.

    A block of ``c`` rows or columns costs ``O(B·c·d)`` time and ``O(B·c)`` memory, so a chunked
    sampler over a super-batch of ``B`` needs ``O(B·(chunk + d))`` memory in all.

    Parameters
    ----------
    criterion:
        ``"hard-learner"`` (needs ``learner``), ``"easy-reference"`` (needs ``reference``) or
        ``"learnability"`` (needs both).
    learner, reference:
        The learner's and the reference model's embeddings of the same ``B`` pairs, in the same
        order (the reference's typically looked up from a cache by example id).
    """

    def __init__(
        self,
        criterion: str,
        *,
        learner: PairEmbeddings | None = None,
        reference: PairEmbeddings | None = None,
    ) -> None:
        check_criterion(criterion)
        uses_learner, uses_reference = _needs(criterion)
        for name, emb, used in (
            ("learner", learner, uses_learner),
            ("reference", reference, uses_reference),
        ):
            if used and emb is None:
                raise ValueError(f"criterion {criterion!r} needs the {name} embeddings")
        self.criterion = criterion
        # a pair with a NaN or inf coordinate is NaN throughout: ranked last and counted
        self.learner = poison_non_finite_pairs(learner) if uses_learner else None
        self.reference = poison_non_finite_pairs(reference) if uses_reference else None
        given = [e for e in (self.learner, self.reference) if e is not None]
        if len(given) == 2 and len(given[0]) != len(given[1]):
            raise ValueError(
                f"learner and reference embeddings must cover the same pairs: {len(given[0])} "
                f"and {len(given[1])} given"
            )
        self._size = len(given[0])
        self.device = given[0].image.device

    @property
    def size(self) -> int:
        return self._size

    def _losses(self, emb: PairEmbeddings, index: Tensor, *, by_rows: bool) -> Tensor:
        """``L[index, :]`` (or ``L[:, index]``): every entry as a negative, then the ``c`` true
        pairs (``(a, index[a])``) fixed in place, so no ``B × c`` mask is built."""
        if by_rows:
            logits = _dot_block(emb.image.index_select(0, index), emb.text)
        else:
            logits = _dot_block(emb.image, emb.text.index_select(0, index))
        logits.mul_(emb.scale).add_(emb.bias)
        positions = torch.arange(index.shape[0], device=index.device)
        where = (positions, index) if by_rows else (index, positions)
        positives = F.softplus(-logits[where])
        losses = F.softplus(logits)
        losses[where] = positives
        return losses

    def _combine(self, index: Tensor, *, by_rows: bool) -> Tensor:
        if self.learner is None:
            return self._losses(self.reference, index, by_rows=by_rows).neg_()
        out = self._losses(self.learner, index, by_rows=by_rows)
        if self.reference is not None:
            out.sub_(self._losses(self.reference, index, by_rows=by_rows))
        return out

    def _positive_losses(self, emb: PairEmbeddings) -> Tensor:
        """``L_ii`` for every pair: ``O(B·d)``, no matrix."""
        logits = (emb.image * emb.text).sum(dim=1) * emb.scale + emb.bias
        return F.softplus(-logits)

    def diagonal(self) -> Tensor:
        if self.learner is None:
            return self._positive_losses(self.reference).neg_()
        out = self._positive_losses(self.learner)
        if self.reference is not None:
            out.sub_(self._positive_losses(self.reference))
        return out

    def rows(self, index: Tensor) -> Tensor:
        return self._combine(index, by_rows=True)

    def columns(self, index: Tensor) -> Tensor:
        return self._combine(index, by_rows=False)
