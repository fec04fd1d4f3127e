"""Rank statistics between two scorings of the same examples (a proxy's and the target's).

- Spearman's ρ: Pearson correlation of the average ranks (ties share their mean rank).
- Kendall's τ-b: ``(n_c − n_d) / sqrt((n_0 − n_a)(n_0 − n_b))`` over the ``n_0 = N(N−1)/2``
  pairs, with ``n_c``/``n_d`` the concordant/discordant pairs and ``n_a``/``n_b`` the pairs tied
  in ``a``/``b``. Exact, in O(N log N) (Knight's algorithm): after sorting by ``(a, b)`` the
  discordant pairs are the inversions of ``b``, counted bit by bit
  (:func:`_kendall_tau_exact` is the O(N²) all-pairs reference the tests compare against).
- Top-k overlap: the share of one scoring's ``k`` highest that are among the other's ``k`` highest.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_int_range

__all__ = ["average_ranks", "spearman", "kendall_tau", "top_k_overlap"]


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Two finite 1-D score vectors of one length (at least 2), as float64 on the CPU."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(
            f"need two 1-D score vectors of one length, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if a.numel() < 2:
        raise ValueError("rank agreement needs at least 2 examples")
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    for name, x in (("a", a), ("b", b)):
        n_bad = int((~torch.isfinite(x)).sum())
        if n_bad:
            raise ValueError(
                f"scores {name} have {n_bad} non-finite value(s) (NaN or inf); "
                "rank agreement needs finite scores"
            )
    return a, b


def average_ranks(x: Tensor) -> Tensor:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = torch.sort(x, stable=True)
    values = order.values
    first = torch.searchsorted(values, values, right=False)
    last = torch.searchsorted(values, values, right=True)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order.indices] = (first + last + 1).double() / 2
    return ranks


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's ρ (``nan`` when either scoring is constant)."""
    a, b = _check_pair(a, b)
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else math.nan


def _tied_pairs(keys: Tensor) -> int:
    """``Σ t(t−1)/2`` over the groups of equal keys: the number of tied pairs."""
    counts = torch.unique(keys, return_counts=True)[1]
    return int((counts * (counts - 1)).sum()) // 2


def _inversions(x: Tensor) -> int:
    """The pairs ``i < j`` with ``x[i] > x[j]`` for nonnegative integers ``x``, in O(N log N log m).

    A pair of unequal values first differs at one bit, from the top: it is counted there, as a 1
    before a 0 among the values that share the higher bits (stable-sorted by those bits, each group
    keeps its original order). One pass per bit of ``max(x)``.
    """
    total = 0
    for bit in reversed(range(max(int(x.max()), 1).bit_length())):
        groups = torch.sort(x >> (bit + 1), stable=True)
        ones = (x[groups.indices] >> bit) & 1
        ones_before = torch.cumsum(ones, 0) - ones
        group_start = torch.searchsorted(groups.values, groups.values)
        in_group = ones_before - ones_before[group_start]  # ones earlier in the same group
        total += int(in_group[ones == 0].sum())
    return total


def kendall_tau(a: Tensor, b: Tensor) -> float:
    """Kendall's τ-b, exact in O(N log N) (``nan`` when either scoring is constant).

    ``τ_b = (n_0 − n_a − n_b + n_ab − 2 n_d) / sqrt((n_0 − n_a)(n_0 − n_b))``: ``n_ab`` counts the
    pairs tied in both, and ``n_d`` (discordant) the inversions of ``b`` once sorted by ``(a, b)``.
    The counts are exact integers; only the final division is in floating point.
    """
    a, b = _check_pair(a, b)
    n = a.numel()
    rank_a = torch.unique(a, return_inverse=True)[1]  # dense integer ranks: ties stay ties
    values_b, rank_b = torch.unique(b, return_inverse=True)
    joint = rank_a * len(values_b) + rank_b  # orders by a, then by b
    ties_a, ties_b, ties_ab = _tied_pairs(rank_a), _tied_pairs(rank_b), _tied_pairs(joint)
    discordant = _inversions(rank_b[torch.argsort(joint)])
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_a) * (pairs - ties_b))
    if denominator == 0:
        return math.nan
    return (pairs - ties_a - ties_b + ties_ab - 2 * discordant) / denominator


def _kendall_tau_exact(a: Tensor, b: Tensor, *, chunk_size: int = 1024) -> float:
    """τ-b over all ordered pairs in row chunks: O(N²) time, O(chunk·N) memory (the reference)."""
    a, b = _check_pair(a, b)
    check_int_range(chunk_size, "chunk_size", low=1)
    n = a.numel()
    concordance = ties_a = ties_b = 0.0
    for start in range(0, n, chunk_size):
        da = torch.sign(a[start : start + chunk_size, None] - a[None, :])
        db = torch.sign(b[start : start + chunk_size, None] - b[None, :])
        concordance += float((da * db).sum())
        ties_a += float((da == 0).sum())
        ties_b += float((db == 0).sum())
    pairs = n * (n - 1)  # ordered pairs; the diagonal's n self-ties are removed below
    denominator = math.sqrt((pairs - (ties_a - n)) * (pairs - (ties_b - n)))
    return concordance / denominator if denominator > 0 else math.nan


def top_k_overlap(a: Tensor, b: Tensor, k: int) -> float:
    """``|top_k(a) ∩ top_k(b)| / k`` (ties broken by position)."""
    a, b = _check_pair(a, b)
    check_int_range(k, "k", low=1, high=a.numel())
    top_a = torch.sort(a, descending=True, stable=True).indices[:k]
    top_b = torch.sort(b, descending=True, stable=True).indices[:k]
    in_b = torch.zeros(a.numel(), dtype=torch.bool)
    in_b[top_b] = True
    return int(in_b[top_a].sum()) / k
