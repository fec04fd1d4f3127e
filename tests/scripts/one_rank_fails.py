"""Under torchrun: rank 1 fails before a collective that rank 0 is already waiting in."""

import torch
import torch.distributed as dist

from siftdata.distributed import all_gather_rows, world_of

dist.init_process_group("gloo")
world = world_of()
if world.rank == 1:
    raise ValueError("rank 1 found bad data")
all_gather_rows(torch.zeros(2), world)  # rank 0 waits here for rank 1, which has gone
