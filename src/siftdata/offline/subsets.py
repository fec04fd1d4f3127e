"""Subset policies: which examples a core-set keeps, given per-example scores (higher = harder).

Scores say how hard or uncertain an example is; a policy, chosen separately, says which to keep:

- ``hardest``: the highest scores; ``easiest``: the lowest;
- ``middle``: a band around the median (drops the same number from both ends);
- ``stratified``: coverage-centric (CCS, Zheng et al. 2023): drop the ``drop_hardest`` share of
  highest scores (likely mislabeled), split the rest into ``bins`` equal-width score bins and
  spread the budget evenly over them (a bin smaller than its share gives all it has, the rest goes
  to the others), uniformly at random within each bin.

``labels`` makes any policy class-balanced: the budget is split evenly over the classes (again
redistributing what small classes cannot take) and the policy runs within each class. The size is
a ``keep`` fraction in (0, 1] or an absolute ``budget``. Ties break by position, so a policy is
deterministic except ``stratified``, which draws from its own seeded generator.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_finite, check_int_range, check_seed

__all__ = ["POLICIES", "subset_size", "select_subset"]

POLICIES = ("hardest", "easiest", "middle", "stratified")


def subset_size(n: int, *, keep: float | None = None, budget: int | None = None) -> int:
    """The number kept: ``round(keep · n)`` (at least 1) or ``budget``; exactly one must be given."""
    if (keep is None) == (budget is None):
        raise ValueError("give exactly one of keep (a fraction) and budget (a count)")
    if budget is not None:
        return check_int_range(budget, "budget", low=1, high=n)
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ValueError(f"keep must be a fraction in (0, 1], got {keep!r}")
    return max(1, round(keep * n))


def _even_split(capacities: list[int], total: int) -> list[int]:
    """Spread ``total`` over groups as evenly as their capacities allow (water-filling)."""
    shares, left, open_groups = [0] * len(capacities), total, list(range(len(capacities)))
    while left > 0 and open_groups:
        each = max(1, left // len(open_groups))
        for g in list(open_groups):
            take = min(each, capacities[g] - shares[g], left)
            shares[g] += take
            left -= take
            if shares[g] == capacities[g]:
                open_groups.remove(g)
            if left == 0:
                break
    return shares


def _ordered(scores: Tensor, descending: bool) -> Tensor:
    return torch.sort(scores, descending=descending, stable=True).indices


def _stratified(scores, n_keep, *, bins, drop_hardest, generator) -> Tensor:
    order = _ordered(scores, descending=True)
    pool = order[math.floor(drop_hardest * scores.numel()) :]
    if pool.numel() < n_keep:
        raise ValueError(
            f"drop_hardest={drop_hardest} leaves {pool.numel()} examples, fewer than the "
            f"{n_keep} to keep"
        )
    values = scores[pool]
    low, high = float(values.min()), float(values.max())
    width = (high - low) / bins or 1.0
    which = ((values - low) / width).floor().clamp(max=bins - 1).long()
    members = [pool[which == b] for b in range(bins)]
    shares = _even_split([m.numel() for m in members], n_keep)
    picked = [
        m[torch.randperm(m.numel(), generator=generator)[:s]]
        for m, s in zip(members, shares, strict=True)
    ]
    return torch.cat(picked)


def _one_group(scores, n_keep, policy, bins, drop_hardest, generator) -> Tensor:
    if policy == "hardest":
        return _ordered(scores, descending=True)[:n_keep]
    if policy == "easiest":
        return _ordered(scores, descending=False)[:n_keep]
    if policy == "middle":
        start = (scores.numel() - n_keep) // 2
        return _ordered(scores, descending=True)[start : start + n_keep]
    return _stratified(scores, n_keep, bins=bins, drop_hardest=drop_hardest, generator=generator)


def select_subset(
    scores: Tensor,
    *,
    policy: str,
    keep: float | None = None,
    budget: int | None = None,
    labels: Tensor | None = None,
    bins: int = 50,
    drop_hardest: float = 0.0,
    seed: int = 0,
) -> Tensor:
    """Row indices of the kept examples (sorted), for scores where higher means harder.

    Parameters
    ----------
    scores : Tensor
        ``(N,)`` finite scores (a score where lower is harder, e.g. the margin, is negated first).
    policy : str
        One of :data:`POLICIES`.
    keep, budget :
        The size: a fraction in (0, 1] or a count in [1, N]; exactly one.
    labels : Tensor, optional
        ``(N,)`` class labels: balance the kept set over the classes.
    bins, drop_hardest :
        ``stratified`` only: number of score bins, and the share of hardest examples dropped first.
    seed : int
        ``stratified`` only: its own generator's seed.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    check_finite(scores, "scores")
    check_int_range(bins, "bins", low=1)
    if not 0 <= drop_hardest < 1:
        raise ValueError(f"drop_hardest must be in [0, 1), got {drop_hardest}")
    n_keep = subset_size(scores.numel(), keep=keep, budget=budget)
    scores = scores.detach().cpu()
    g = torch.Generator().manual_seed(check_seed(seed))
    if labels is None:
        kept = _one_group(scores, n_keep, policy, bins, drop_hardest, g)
        return torch.sort(kept).values
    if labels.shape != scores.shape:
        raise ValueError(f"labels must match scores, got {tuple(labels.shape)}")
    labels = labels.cpu()
    groups = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
    shares = _even_split([idx.numel() for idx in groups], n_keep)
    kept = [
        idx[_one_group(scores[idx], s, policy, bins, drop_hardest, g)]
        for idx, s in zip(groups, shares, strict=True)
        if s > 0
    ]
    return torch.sort(torch.cat(kept)).values
