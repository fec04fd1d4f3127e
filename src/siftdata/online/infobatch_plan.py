"""One InfoBatch epoch's plan: which well-learned examples to drop, the order and the weights."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["full_stats", "plan_pruned"]


def full_stats() -> dict[str, float]:
    """The stats of a full epoch (nothing dropped, every weight 1)."""
    nan = math.nan
    return {
        "num_dropped": 0,
        "kept_low_weight": 1.0,
        "mean_loss": nan,
        "low_threshold": nan,
        "unseen_in_low": 0,
        "dropped_at_or_above_mean": nan,
    }


def plan_pruned(
    table: Tensor, *, num_low: int, num_dropped: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """One pruned epoch: drop ``D`` of the ``M`` lowest losses at random, weight the rest of them.

    Parameters
    ----------
    table : Tensor
        ``(N,)`` CPU losses at the epoch's start, ``+inf`` for examples never seen (ranked last;
        ties go to the lower position, NaN ranks after everything).
    num_low, num_dropped : int
        ``M`` and ``D``, with ``0 ≤ D < M ≤ N``.
    generator : torch.Generator
        The epoch's own CPU generator: the drop set, then the order.

    Returns
    -------
    order : Tensor
        The ``N − D`` kept positions in random order.
    weights : Tensor
        ``(N,)``: ``M / (M − D)`` for the kept members of ``W``, 0 for the dropped, 1 otherwise.
    stats : dict
        ``mean_loss`` (of the finite losses), ``low_threshold`` (the largest loss in ``W``),
        ``unseen_in_low`` and ``dropped_at_or_above_mean`` (the share of dropped examples whose
        loss is not below the mean; 0 for the usual right-skewed losses).
    """
    low = torch.sort(table, stable=True).indices[:num_low]
    dropped = low[torch.randperm(num_low, generator=generator)[:num_dropped]]
    weight = num_low / (num_low - num_dropped)
    weights = torch.ones(table.shape[0])
    weights[low] = weight
    weights[dropped] = 0.0
    kept = torch.nonzero(weights).flatten()
    order = kept[torch.randperm(kept.numel(), generator=generator)]
    finite = table[torch.isfinite(table)]
    mean = float(finite.mean()) if finite.numel() else math.nan
    stats = {
        "num_dropped": num_dropped,
        "kept_low_weight": weight,
        "mean_loss": mean,
        "low_threshold": float(table[low[-1]]),
        "unseen_in_low": int((~torch.isfinite(table[low])).sum()),
        "dropped_at_or_above_mean": float((table[dropped] >= mean).double().mean())
        if finite.numel()
        else math.nan,
    }
    return order, weights, stats
