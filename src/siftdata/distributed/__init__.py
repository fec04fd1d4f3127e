"""Scale-out on ``torch.distributed``: one global selection across ranks for every online family.

Each rank scores its share of the global super-batch; ids, losses, outputs and embeddings are
all-gathered as separate tensors; every rank runs the same seeded selection and trains on its
equal share of it. See :mod:`siftdata.distributed.selection`.
"""

from .gather import all_gather_rows, gather_outputs, gather_scoring_batch
from .launch import join_from_environment, leader_first, share_from_leader
from .pair_loss import global_sigmoid_loss
from .scoring import follow_scoring_passes, score_dataset_on_ranks, scoring_led_by_rank0
from .selection import (
    GlobalSelection,
    observe_global,
    select_batch_global,
    select_global,
    take_share,
)
from .world import World, check_same_on_every_rank, even_share, shard, world_of

__all__ = [
    "World",
    "world_of",
    "even_share",
    "shard",
    "check_same_on_every_rank",
    "all_gather_rows",
    "gather_outputs",
    "gather_scoring_batch",
    "GlobalSelection",
    "select_global",
    "select_batch_global",
    "take_share",
    "observe_global",
    "global_sigmoid_loss",
    "join_from_environment",
    "leader_first",
    "share_from_leader",
    "score_dataset_on_ranks",
    "scoring_led_by_rank0",
    "follow_scoring_passes",
]
