"""Who this process is in a ``torch.distributed`` process group, and the even split of a batch.

Global selection needs every rank to hold an equal share of the super-batch (``B / W``) and of
the selection (``b / W``): equal shards keep every collective the same size and DDP's gradient
all-reduce in step, so no rank ever waits for a tensor another rank does not send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist
from torch import Tensor

__all__ = ["World", "world_of", "even_share", "shard", "check_same_on_every_rank"]


@dataclass(frozen=True)
class World:
    """A process group seen from one rank: ``rank`` of ``size``; ``group`` ``None`` is the default
    group (or no group at all when ``size`` is 1)."""

    rank: int = 0
    size: int = 1
    group: Any = None

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank."""
        return self.size > 1


def world_of(group: Any = None) -> World:
    """This process's place in ``group`` (default: the default group; one rank if none exists).

    Raises ``ValueError`` for an explicit ``group`` without an initialised default group.
    """
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise ValueError(
                "a process group was given but torch.distributed is not initialised; call "
                "torch.distributed.init_process_group first (torchrun sets up its environment)"
            )
        return World()
    return World(dist.get_rank(group), dist.get_world_size(group), group)


def even_share(n: int, world: World, what: str) -> int:
    """``n / W``; ``ValueError`` naming ``what`` unless ``W`` divides ``n`` (an uneven split would
    leave ranks waiting for each other in a collective)."""
    if n % world.size:
        raise ValueError(
            f"{what} ({n}) must be a multiple of the world size ({world.size}), so that every "
            f"rank gets the same share; use {n - n % world.size} or {n + world.size - n % world.size}"
        )
    return n // world.size


def shard(rows: Tensor, world: World) -> Tensor:
    """This rank's contiguous share of ``rows`` (``rows.shape[0]`` divisible by ``W``)."""
    size = even_share(rows.shape[0], world, "the number of rows")
    return rows[world.rank * size : (world.rank + 1) * size]


def check_same_on_every_rank(facts: dict[str, Any], world: World) -> None:
    """Raise ``ValueError`` on every rank, naming the first fact that differs, unless every rank
    has the same ``facts`` (one collective; e.g. seeds and data fingerprints, so that no rank
    draws other super-batches than the others without a word)."""
    if not world.distributed:
        return
    every: list[Any] = [None] * world.size
    dist.all_gather_object(every, facts, group=world.group)
    for key in facts:
        values = [f.get(key) for f in every]
        if any(v != values[0] for v in values[1:]):
            shown = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise ValueError(
                f"the ranks disagree on {key} ({shown}); every rank must train the same run "
                "(same options, seed and data) for one global selection"
            )
