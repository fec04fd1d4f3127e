"""The SigLIP pair loss when the pairs of a step are spread over ranks.

A pair's sigmoid loss is against every other pair of the batch (its negatives). A rank that
trains on its ``b / W`` share must still see the other ranks' pairs, or it trains a different
loss from the one-process run. :func:`global_sigmoid_loss` all-gathers both towers' embeddings
with autograd (gradients flow back to the rank that owns each pair) and returns the per-pair
losses of this rank's pairs against all ``b``: averaged over ranks by DDP, the gradient is the
one-process gradient of the whole batch's loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
from torch import Tensor

from ..core.pairwise import PairEmbeddings, per_example_sigmoid_loss, sigmoid_pair_loss_block
from .world import World

__all__ = ["global_sigmoid_loss"]


def _all_rows(rows: Tensor, group: Any) -> Tensor:
    """Every rank's ``rows`` in rank order, differentiable (the gradient goes back to its owner)."""
    return funcol.wait_tensor(funcol.all_gather_single_autograd(rows.contiguous(), 0, group))


def global_sigmoid_loss(world: World) -> Callable[[PairEmbeddings, Any], Tensor]:
    """A per-pair loss function for the training loop: ``ℓ_i = ½ (Σ_j L_ij + Σ_j L_ji)`` of this
    rank's pairs ``i`` against the pairs ``j`` of every rank (one process: the plain
    :func:`~siftdata.core.pairwise.per_example_sigmoid_loss`). Every rank must call it, once
    (it creates a process group for the loss's collectives)."""
    if not world.distributed:
        return per_example_sigmoid_loss
    # A group of its own (created here, by every rank alike): the backward's collectives must
    # not interleave with DDP's gradient all-reduces on one group, whose order may differ by rank.
    ranks = dist.get_process_group_ranks(world.group or dist.group.WORLD)
    group = dist.new_group(ranks)

    def loss(outputs: PairEmbeddings, labels: Any = None) -> Tensor:
        del labels
        n = len(outputs)
        images, texts = _all_rows(outputs.image, group), _all_rows(outputs.text, group)
        mine = torch.arange(n, device=images.device) + world.rank * n
        positive = mine[:, None] == torch.arange(images.shape[0], device=images.device)[None, :]
        scale, bias = outputs.scale, outputs.bias
        rows = sigmoid_pair_loss_block(
            outputs.image, texts, scale=scale, bias=bias, positive=positive
        )
        columns = sigmoid_pair_loss_block(
            images, outputs.text, scale=scale, bias=bias, positive=positive.T
        )
        return 0.5 * (rows.sum(dim=1) + columns.sum(dim=0))

    return loss
