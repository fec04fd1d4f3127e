"""Joining the process group torchrun prepares, and doing one-off work on rank 0 first.

``torchrun --standalone --nproc_per_node=N -m siftdata train ...`` starts ``N`` processes with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; :func:`join_from_environment` initialises the
default group from them (NCCL on GPUs, gloo otherwise; each rank on its own local GPU).
:func:`leader_first` lets rank 0 build what all ranks share (a reference and its cache, a run
folder's claim) while the others wait, then load it; a failure on rank 0 reaches every rank as
the same error, so no rank waits forever for a rank that has stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from .world import World, world_of

__all__ = ["join_from_environment", "leader_first", "share_from_leader"]


def join_from_environment() -> World:
    """This process's :class:`World`: the default group initialised from torchrun's environment
    (``WORLD_SIZE`` > 1), an already initialised one, or one process."""
    if dist.is_available() and dist.is_initialized():
        return world_of()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world_of()


def share_from_leader(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (one broadcast; ``value`` must pickle)."""
    if not world.distributed:
        return value
    box = [value]
    group = world.group or dist.group.WORLD
    dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0), group=world.group)
    return box[0]


@contextmanager
def leader_first(world: World) -> Iterator[None]:
    """Run the block on rank 0, then on the other ranks (which wait for it): rank 0 builds a
    cache, the others load it. An error on rank 0 is raised on every rank (``ValueError``
    naming it on the others) instead of leaving them waiting."""
    if not world.distributed:
        yield
        return
    if world.rank == 0:
        try:
            yield
        except Exception as err:
            share_from_leader(f"{type(err).__name__}: {err}", world)
            raise
        share_from_leader(None, world)
        return
    failure = share_from_leader(None, world)
    if failure is not None:
        raise ValueError(f"rank 0 failed: {failure}")
    yield
