"""Offline scoring sharded over ranks: each scores its shards, then the result is assembled.

The dataset is cut into shards of ``shard_size`` consecutive examples, shard ``i`` scored by rank
``i mod W`` into ``shard_dir`` (a folder every rank can read: one machine, or a shared file
system), each shard saved atomically under its own name, so no rank's file is another's and
nothing is padded or repeated (unlike a ``DistributedSampler``, which pads with repeats: there is
nothing to de-duplicate). After a barrier the result is assembled from the shards, each checked
to cover exactly its rows, so every id is scored exactly once; an interrupted run reuses the
shards every rank had finished. The scores are those of one process, bit for bit, for a
deterministic model.

:func:`score_dataset_on_ranks` is the call every rank makes. For a command whose other work
(training the proxy, k-center, saving stores) runs on rank 0 only, :func:`scoring_led_by_rank0`
gives rank 0 a scoring pass that sends the trained model to the other ranks, which run
:func:`follow_scoring_passes` until rank 0 is done.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..offline.scoring import ScoredDataset, score_dataset
from ..scoring.scorers import Scorer
from .launch import share_from_leader
from .world import World

__all__ = ["score_dataset_on_ranks", "scoring_led_by_rank0", "follow_scoring_passes"]

_SCORE, _DONE = "score", "done"


def score_dataset_on_ranks(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor | None,
    scorers: Mapping[str, Scorer],
    *,
    shard_dir: str | os.PathLike,
    world: World,
    progress: bool = True,
    result_on_every_rank: bool = True,
    **options: Any,
) -> ScoredDataset | None:
    """:func:`~siftdata.offline.scoring.score_dataset` on every rank of ``world``, each scoring
    its share of the shards; returns the whole result on every rank, or with
    ``result_on_every_rank=False`` on rank 0 only (``None`` elsewhere; ``options`` as there)."""
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
    if world.rank != 0 and not result_on_every_rank:
        return None
    result = score_dataset(
        model, inputs, labels, scorers, shard_dir=shard_dir, progress=False, **options
    )
    if world.distributed and result_on_every_rank:
        dist.barrier(group=world.group)  # every rank has read the shards: they may be removed
    return result


ScorePass = Callable[..., ScoredDataset]


@contextmanager
def scoring_led_by_rank0(world: World) -> Iterator[ScorePass]:
    """On rank 0: a drop-in for :func:`~siftdata.offline.scoring.score_dataset` (its signature,
    ``shard_dir`` required) that has every rank score a share, the others running
    :func:`follow_scoring_passes`. Leaving the block tells them to stop, or that rank 0 failed
    (they raise it, rather than wait)."""
    if world.rank != 0:
        raise ValueError("scoring_led_by_rank0 runs on rank 0; the others follow_scoring_passes")

    def score_pass(model, inputs, labels, scorers, **options) -> ScoredDataset:
        portable = copy.deepcopy(model).to("cpu")
        share_from_leader((_SCORE, (portable, dict(scorers), options)), world)
        return _led_share(model, inputs, labels, scorers, world, options)

    try:
        yield score_pass
    except Exception as err:
        share_from_leader((_DONE, f"{type(err).__name__}: {err}"), world)
        raise
    share_from_leader((_DONE, None), world)


def follow_scoring_passes(
    world: World, inputs: Tensor, labels: Tensor | None, device: torch.device | str
) -> None:
    """On ranks other than 0: score this rank's share of every pass rank 0 starts (the model
    moved to ``device``, the data ``inputs``/``labels`` as rank 0's), until rank 0 is done."""
    if world.rank == 0:
        raise ValueError("follow_scoring_passes runs on ranks other than 0")
    while True:
        kind, payload = share_from_leader(None, world)
        if kind == _DONE:
            if payload is not None:
                raise ValueError(f"rank 0 failed: {payload}")
            return
        model, scorers, options = payload
        _led_share(model.to(device), inputs, labels, scorers, world, options)


def _led_share(model, inputs, labels, scorers, world: World, options: dict):
    """This rank's share of a pass rank 0 leads (``options`` as rank 0 gave them, ``shard_dir``
    among them); the result on rank 0 only."""
    return score_dataset_on_ranks(
        model, inputs, labels, scorers, world=world, result_on_every_rank=False, **options
    )
