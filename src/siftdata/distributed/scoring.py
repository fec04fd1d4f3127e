"""Offline scoring sharded over ranks: each scores its shards, every rank then reads them all.

The dataset is cut into shards of ``shard_size`` consecutive examples, shard ``i`` scored by rank
``i mod W`` into ``shard_dir`` (a folder every rank can read: one machine, or a shared file
system), each shard saved atomically under its own name, so no rank's file is another's and
nothing is padded or repeated. After a barrier every rank assembles the same result from the
shards, each checked to cover exactly its rows; an interrupted run reuses the shards every rank
had finished. The scores are those of one process, bit for bit, for a deterministic model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch.distributed as dist
from torch import Tensor, nn

from ..offline.scoring import ScoredDataset, score_dataset
from ..scoring.scorers import Scorer
from .world import World

__all__ = ["score_dataset_on_ranks"]


def score_dataset_on_ranks(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor | None,
    scorers: Mapping[str, Scorer],
    *,
    shard_dir: str | os.PathLike,
    world: World,
    progress: bool = True,
    **options: Any,
) -> ScoredDataset:
    """:func:`~siftdata.offline.scoring.score_dataset` on every rank of ``world``, each scoring
    its share of the shards; returns the whole result on every rank (``options`` as there)."""
    score_dataset(
        model,
        inputs,
        labels,
        scorers,
        shard_dir=shard_dir,
        share=(world.rank, world.size),
        progress=progress and world.rank == 0,
        **options,
    )
    if world.distributed:
        dist.barrier(group=world.group)  # every share saved
    result = score_dataset(
        model, inputs, labels, scorers, shard_dir=shard_dir, progress=False, **options
    )
    return result
