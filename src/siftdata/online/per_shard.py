"""Per-rank ("local") selection, as other tools do it: each of ``W`` shares of the super-batch
picks its own ``k / W``, instead of one selection of ``k`` from all ``B``.

With ``W`` ranks each holding ``B / W`` of the super-batch, per-rank selection (RHO-LOSS's code,
Composer's selective backprop) is each rank's best ``k / W`` of its own share. It is not the
method the papers describe: the best ``k`` of ``B`` may sit unevenly across the shares.
:class:`PerShardSelector` makes exactly that selection over a whole super-batch — share ``r`` is
rows ``r·B/W … (r+1)·B/W − 1``, as on rank ``r`` — so its cost in quality can be measured on
one process, and a distributed run can choose it (``local_shards = W``) to compare.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._validation import check_int_range, check_k, check_vector
from .base import Selection, Selector

__all__ = ["PerShardSelector"]


class PerShardSelector:
    """``selector`` on each of ``shards`` equal, contiguous shares of the scores, ``k / shards``
    from each (``B`` and ``k`` must divide evenly); weights and stats are put together in the
    shares' order (stats averaged over the shares)."""

    def __init__(self, selector: Selector, shards: int) -> None:
        self.selector = selector
        self.shards = check_int_range(shards, "shards", low=1)
        self.check_values = getattr(selector, "check_values", False)  # choose() honours it

    def select(self, scores: Tensor, k: int) -> Selection:
        check_vector(scores, "scores")
        check_k(k, scores.shape[0])
        size, w = scores.shape[0], self.shards
        if size % w or k % w:
            raise ValueError(
                f"per-shard selection needs the super-batch ({size}) and k ({k}) to be "
                f"multiples of the number of shards ({w})"
            )
        share = size // w
        parts = [
            self.selector.select(scores[r * share : (r + 1) * share], k // w) for r in range(w)
        ]
        indices = torch.cat([p.indices + r * share for r, p in enumerate(parts)])
        weights = None
        if parts[0].weights is not None:  # a share's weights keep its own mean unbiased
            weights = torch.cat([p.weights for p in parts])
        stats = {
            name: torch.stack([p.stats[name] for p in parts]).float().mean()
            for name in parts[0].stats
        }
        return Selection(indices=indices, weights=weights, stats=stats)

    def state_dict(self) -> dict[str, Any]:
        return self.selector.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.selector.load_state_dict(state)

    def __repr__(self) -> str:
        return f"PerShardSelector({self.selector!r}, shards={self.shards})"
