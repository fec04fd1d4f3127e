"""Seeded index splits (for example a training pool and a holdout set for a reference model)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_int_range, check_seed

__all__ = ["pool_holdout_split"]


def pool_holdout_split(n: int, *, holdout_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` at random into a pool and a holdout set.

    Parameters
    ----------
    n : int
        Number of examples, at least 2.
    holdout_size : int
        Size of the holdout set, in ``[1, n - 1]``.
    seed : int
        Seed of the private ``torch.Generator`` that draws the split; global RNG is untouched.

    Returns
    -------
    pool, holdout : Tensor
        Disjoint sorted ``int64`` index tensors that together cover ``range(n)``; ``holdout``
        has ``holdout_size`` entries and ``pool`` the other ``n - holdout_size``.
    """
    check_int_range(n, "n", low=2)
    check_int_range(holdout_size, "holdout_size", low=1, high=n - 1)
    generator = torch.Generator().manual_seed(check_seed(seed))
    perm = torch.randperm(n, generator=generator)
    holdout = perm[:holdout_size].sort().values
    pool = perm[holdout_size:].sort().values
    return pool, holdout
