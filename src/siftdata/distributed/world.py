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

__all__ = ["World", "world_of", "even_share", "shard"]


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
