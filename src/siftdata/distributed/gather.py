"""All-gathers for global selection: each rank's rows, concatenated in rank order.

Ids (int64) and floats always travel as separate tensors: packing ids into a float tensor would
round every id above 2**24. Each call is one collective per tensor and no host sync.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..core.pairwise import PairEmbeddings
from ..scoring.scorers import FORWARD_NEEDS, Need, ScoringBatch
from .world import World

__all__ = ["all_gather_rows", "all_gather_inputs", "gather_outputs", "gather_scoring_batch"]


def all_gather_rows(rows: Tensor, world: World) -> Tensor:
    """Every rank's ``rows`` (same shape and dtype on every rank), concatenated in rank order."""
    if not world.distributed:
        return rows
    rows = rows.contiguous()
    parts = [torch.empty_like(rows) for _ in range(world.size)]
    dist.all_gather(parts, rows, group=world.group)
    return torch.cat(parts)


def all_gather_inputs(inputs: Any, world: World) -> Any:
    """Every rank's super-batch inputs: a tensor's rows, or each tensor of a tuple's."""
    if isinstance(inputs, tuple):
        return tuple(all_gather_rows(t, world) for t in inputs)
    return all_gather_rows(inputs, world)


def gather_outputs(outputs: Any, world: World) -> Any:
    """A model's outputs over the global super-batch: a tensor's rows, or a two-tower model's
    :class:`PairEmbeddings` (image and text rows; scale and bias are the same on every rank)."""
    if not world.distributed or outputs is None:
        return outputs
    if isinstance(outputs, Tensor):
        return all_gather_rows(outputs, world)
    if isinstance(outputs, PairEmbeddings):
        image, text = (all_gather_rows(t, world) for t in (outputs.image, outputs.text))
        return PairEmbeddings(image, text, outputs.scale, outputs.bias)
    raise ValueError(
        "global selection gathers a model's outputs when the scorer needs them: a tensor or "
        f"PairEmbeddings, got {type(outputs).__name__}"
    )


def gather_scoring_batch(
    local: ScoringBatch,
    world: World,
    *,
    needs: frozenset[Need] = FORWARD_NEEDS,
    ids: Tensor | None = None,
    labels: Tensor | None = None,
) -> ScoringBatch:
    """The scorer's inputs over the global super-batch from each rank's share: only what
    ``needs`` lists (a loss-only scorer gets the losses, never the logits behind them).

    ``ids`` and ``labels`` of the whole super-batch, when this rank already has them (the
    training loop does), are used as they are instead of being gathered.
    """
    if not world.distributed:
        return local
    if ids is None:
        ids = all_gather_rows(local.ids, world)
    if labels is None and local.labels is not None:
        labels = all_gather_rows(local.labels, world)
    loss = None
    if local.loss is not None and Need.LOSS in needs:
        loss = all_gather_rows(local.loss, world)
    outputs = gather_outputs(local.outputs, world) if Need.OUTPUTS in needs else None
    return ScoringBatch(ids=ids, labels=labels, outputs=outputs, loss=loss)
