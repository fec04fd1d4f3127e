"""Rank agreement between two scorings of the same examples (a proxy's and the target's).

- Spearman's ρ: Pearson correlation of the average ranks (ties share their mean rank).
- Kendall's τ-b: concordant minus discordant pairs over the tie-corrected number of pairs,
  exact, over all ``N(N−1)/2`` pairs in row chunks (O(N²) time, O(chunk·N) memory).
- Top-k overlap: the share of one scoring's ``k`` highest that are among the other's ``k`` highest.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_finite, check_int_range

__all__ = ["average_ranks", "spearman", "kendall_tau", "top_k_overlap"]


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(
            f"need two 1-D score vectors of one length, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if a.numel() < 2:
        raise ValueError("rank agreement needs at least 2 examples")
    check_finite(a, "scores")
    check_finite(b, "scores")
    return a.detach().double().cpu(), b.detach().double().cpu()


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


def kendall_tau(a: Tensor, b: Tensor, *, chunk_size: int = 1024) -> float:
    """Kendall's τ-b (``nan`` when either scoring is constant)."""
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
    top_a = set(torch.sort(a, descending=True, stable=True).indices[:k].tolist())
    top_b = set(torch.sort(b, descending=True, stable=True).indices[:k].tolist())
    return len(top_a & top_b) / k
