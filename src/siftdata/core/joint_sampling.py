r"""JEST's joint sampling: build a sub-batch in chunks, each drawn conditional on the chunks before it.

With a contrastive loss the value of a pair depends on the rest of the batch. JEST (Evans et al.,
2024, arXiv 2406.17711) scores a super-batch of ``B`` pairs with a ``B × B`` matrix ``S``
(:mod:`siftdata.core.pairwise`) and approximates sampling the whole sub-batch from its joint score by
blocked sampling: the sub-batch of ``k`` is drawn in ``n`` chunks; chunk ``c`` is drawn without
replacement (Gumbel-top-k) from

.. math:: P(i) ∝ \exp(\mathrm{gain}_i / τ), \qquad
          \mathrm{gain}_i = S_{ii} + \sum_{j \in A} (S_{ij} + S_{ji}),

over the candidates not yet chosen, where ``A`` is the set chosen by the chunks before ``c``. The
gains are kept as a running vector: adding a chunk ``C`` adds the column sums of ``S[C, :]`` and
the row sums of ``S[:, C]``, so a chunk costs ``O(B·|C|)`` and ``S`` is read only block by block.
Given :class:`~siftdata.core.pairwise.EmbeddingPairScores`, the ``B × B`` matrix is never formed.

No host sync: the chunk loop runs ``n`` times on the device with fixed chunk sizes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_int_range, check_positive
from .sampling import _check_generator

__all__ = ["FIRST_CHUNK_RULES", "GAIN_NORMALISATIONS", "chunk_sizes", "joint_sample"]

FIRST_CHUNK_RULES = ("independent", "uniform")
"""How the first chunk is drawn: from the independent scores ``S_ii``, or uniformly."""

GAIN_NORMALISATIONS = ("none", "count")
"""``none``: softmax(gain / τ) as in JEST. ``count``: softmax(gain / ((2|A| + 1)·τ)), the mean
over the terms of the gain, which keeps its scale constant as ``A`` grows (with τ = 1 this makes
the later chunks nearly uniform: scale τ down with it)."""


def chunk_sizes(k: int, chunks: int) -> list[int]:
    """Sizes of ``chunks`` chunks summing to ``k``; the remainder of ``k / chunks`` goes first."""
    check_int_range(chunks, "chunks", low=1)
    if chunks > k:
        raise ValueError(
            f"chunks ({chunks}) must not exceed the number to select, k = {k}: every chunk "
            "holds at least one example"
        )
    base, extra = divmod(k, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


def _check_scores(scores: Any, k: int) -> int:
    for method in ("diagonal", "rows", "columns"):
        if not callable(getattr(scores, method, None)):
            raise TypeError(
                "scores must be PairwiseScores (size, diagonal(), rows(), columns()), e.g. "
                f"siftdata.core.pairwise.DensePairScores; got {type(scores).__name__}"
            )
    size = int(scores.size)
    check_int_range(k, "k", low=1)
    if k > size:
        raise ValueError(f"k ({k}) must not exceed the super-batch size B = {size}")
    return size


def _check_finite(values: Tensor, what: str) -> None:
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"the pairwise scores hold NaN or inf ({what})")


def _keys(gain: Tensor, chosen: Tensor, scale: float | Tensor, generator) -> Tensor:
    """Gumbel keys ``gain·scale + G``, centred on the open candidates' maximum for precision.

    The chosen candidates are set to −∞ *after* the noise is added, and NaN or ±inf gains count
    as −∞ (the lowest priority, below every finite gain), so a chosen candidate can never be
    drawn again, whatever the values (a NaN or inf in ``S``, from NaN embeddings say, cannot
    turn into duplicates or be preferred; ``check_values`` reports it).
    """
    neg_gumbel = torch.rand(gain.shape, generator=generator, device=gain.device, dtype=gain.dtype)
    neg_gumbel.log_().neg_().log_()  # log(−log U) = −G
    logits = gain * scale
    logits = logits.masked_fill(~torch.isfinite(logits), float("-inf"))
    top = logits.masked_fill(chosen, float("-inf")).max()
    keys = (logits - torch.where(torch.isfinite(top), top, 0.0)).sub_(neg_gumbel)
    keys.clamp_(min=torch.finfo(keys.dtype).min)  # an open candidate always beats a chosen one
    return keys.masked_fill_(chosen, float("-inf"))


def joint_sample(
    scores: Any,
    k: int,
    *,
    chunks: int = 16,
    temperature: float = 1.0,
    first_chunk: str = "independent",
    normalise: str = "none",
    generator: torch.Generator | None = None,
    check_values: bool = False,
    diagonal: Tensor | None = None,
) -> Tensor:
    """Draw ``k`` distinct candidates of a super-batch jointly, in ``chunks`` chunks (JEST).

    Parameters
    ----------
    scores : PairwiseScores
        The ``B × B`` score matrix ``S`` (dense or matrix-free), e.g. learnability.
    k : int
        How many to draw, ``1 ≤ k ≤ B``.
    chunks : int
        Number of chunks ``n``, ``1 ≤ n ≤ k``; when ``n ∤ k`` the first ``k mod n`` chunks hold one
        more. ``n = 1`` is independent sampling from ``softmax(S_ii / τ)``.
    temperature : float
        ``τ > 0`` of the softmax over the gains.
    first_chunk : str
        ``"independent"`` (from ``S_ii``, as JEST) or ``"uniform"``.
    normalise : str
        One of :data:`GAIN_NORMALISATIONS`.
    generator : torch.Generator, optional
        Source of the Gumbel noise, on the scores' device.
    check_values : bool
        Check that every block of ``S`` read is finite (one host sync per block). Without it a
        NaN or inf gain cannot produce duplicates, but the draw is then meaningless.
    diagonal : Tensor, optional
        ``scores.diagonal()`` if the caller already has it (it is not recomputed).

    Returns
    -------
    Tensor
        ``(k,)`` distinct int64 positions, in draw order, on the scores' device.
    """
    size = _check_scores(scores, k)
    sizes = chunk_sizes(k, chunks)
    check_positive(temperature, "temperature")
    if first_chunk not in FIRST_CHUNK_RULES:
        raise ValueError(f"first_chunk must be one of {FIRST_CHUNK_RULES}, got {first_chunk!r}")
    if normalise not in GAIN_NORMALISATIONS:
        raise ValueError(f"normalise must be one of {GAIN_NORMALISATIONS}, got {normalise!r}")
    gain = scores.diagonal() if diagonal is None else diagonal
    if gain.shape != (size,) or not gain.is_floating_point():
        raise ValueError(f"scores.diagonal() must be a floating ({size},) vector")
    _check_generator(generator, gain.device)
    if check_values:
        _check_finite(gain, "diagonal")
    gain = gain.to(torch.promote_types(gain.dtype, torch.float32), copy=True)
    chosen = torch.zeros(size, dtype=torch.bool, device=gain.device)
    picked: list[Tensor] = []
    n_chosen = 0
    for c, chunk in enumerate(sizes):
        current = torch.zeros_like(gain) if c == 0 and first_chunk == "uniform" else gain
        scale = 1.0 / temperature
        if normalise == "count":
            scale /= 2 * n_chosen + 1
        index = torch.topk(_keys(current, chosen, scale, generator), chunk, sorted=True).indices
        picked.append(index)
        n_chosen += chunk
        if c + 1 == len(sizes):
            break
        chosen.index_fill_(0, index, True)
        rows, columns = scores.rows(index), scores.columns(index)
        if check_values:
            _check_finite(rows, "a row block")
            _check_finite(columns, "a column block")
        gain += rows.sum(dim=0).to(gain.dtype)
        gain += columns.sum(dim=1).to(gain.dtype)
    return torch.cat(picked)
