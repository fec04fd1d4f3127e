"""One selection from the global super-batch, the same on every rank, each rank training its share.

Per-rank selection (what other tools do) picks each rank's best ``b / W`` of its own ``B / W``;
that is not the method the papers describe, and a joint (JEST) draw never sees the other ranks'
pairs. Here each rank scores its share of the super-batch, what the scorer needs (losses, outputs
or embeddings, and ids) is all-gathered, and every rank runs the same seeded selector over all
``B``: selectors built with the same seed draw the same numbers, so every rank gets the same
selection without a broadcast. Each rank then trains on its equal share of it (``b / W``
positions and their weights), so DDP's gradient all-reduce stays in step.

For a user's own loop::

    sel = select_batch_global(model, x, y, ids, k=b, scorer=scorer, selector=selector)
    x, y, w = take_share(sel, x, y)          # this rank's b / W examples of the global selection
    loss = (loss_fn(ddp_model(x), y) * w).mean() if w is not None else loss_fn(...).mean()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .._batch import index_inputs
from ..core.scores import per_example_loss
from ..online.base import JointSelector, Selection, Selector
from ..online.step import LossFn, ScoringForward, choose, forward_for_scoring
from ..scoring.scorers import Scorer, ScoringBatch
from .gather import all_gather_inputs, all_gather_rows, gather_scoring_batch
from .world import World, even_share, shard, world_of

__all__ = [
    "GlobalSelection",
    "select_global",
    "select_batch_global",
    "take_share",
    "observe_global",
    "check_equal_shares",
]


@dataclass(frozen=True)
class GlobalSelection:
    """A selection over the global super-batch and this rank's share of it.

    Attributes
    ----------
    selection:
        Positions ``(k,)`` into the global super-batch (rank ``r``'s rows ``r·B/W … (r+1)·B/W −
        1`` are its own), weights and stats: identical on every rank.
    ids:
        The example ids of the whole selection, ``(k,)``.
    share:
        This rank's ``k / W`` positions into the global super-batch, in selection order.
    share_weights:
        Their loss weights, or ``None``.
    world:
        The ranks it was made for.
    """

    selection: Selection
    ids: Tensor
    share: Tensor
    share_weights: Tensor | None
    world: World

    @property
    def share_ids(self) -> Tensor:
        """The example ids this rank trains on."""
        return shard(self.ids, self.world)


def select_global(
    batch: ScoringBatch, k: int, scorer: Scorer, selector: Selector | JointSelector, world: World
) -> GlobalSelection:
    """Score the global super-batch ``batch`` and choose ``k`` of it, as every rank does alike."""
    even_share(k, world, "the number selected per step (k)")
    selection = choose(scorer(batch), k, selector)
    weights = None if selection.weights is None else shard(selection.weights, world)
    ids = batch.ids.index_select(0, selection.indices)
    return GlobalSelection(selection, ids, shard(selection.indices, world), weights, world)


def select_batch_global(
    model: nn.Module,
    inputs: Any,
    labels: Tensor | None,
    ids: Tensor,
    *,
    k: int,
    scorer: Scorer,
    selector: Selector | JointSelector,
    group: Any = None,
    loss_fn: LossFn = per_example_loss,
    forward: ScoringForward | None = None,
    check_shares: bool = True,
) -> GlobalSelection:
    """:func:`~siftdata.online.select_batch` over the super-batch of all ranks of ``group``.

    Every rank passes its own ``B / W`` examples (the same count on every rank) and gets the same
    global selection of ``k`` (a multiple of ``W``) and its share of it. One no-grad forward over
    this rank's examples when the scorer needs it, then one all-gather per tensor the scorer
    needs (ids, labels, losses or outputs); no host sync. With one process it is
    :func:`~siftdata.online.select_batch`.

    With ``check_shares`` (default) the ranks first compare their example counts (one 8-byte
    all-gather and a host sync): an uneven last batch is refused on every rank with
    ``ValueError`` (drop it: ``DataLoader(drop_last=True)``) instead of crashing the collective.
    A loop whose shares are equal by construction may turn it off.
    """
    world = world_of(group)
    even_share(k, world, "k (the number selected per step)")
    if check_shares:
        check_equal_shares(ids.shape[0], world, ids.device)
    local = forward_for_scoring(
        model, inputs, labels, ids, needs=scorer.needs, loss_fn=loss_fn, forward=forward
    )
    batch = gather_scoring_batch(local, world, needs=scorer.needs)
    return select_global(batch, k, scorer, selector, world)


def check_equal_shares(rows: int, world: World, device) -> None:
    """Raise ``ValueError`` on every rank unless every rank holds ``rows`` examples."""
    if not world.distributed:
        return
    if dist.get_backend(world.group) == "nccl" and torch.device(device).type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())  # NCCL gathers GPU tensors
    counts = all_gather_rows(torch.tensor([rows], dtype=torch.int64, device=device), world)
    counts = counts.tolist()  # one host sync
    if len(set(counts)) > 1:
        shown = ", ".join(f"rank {r}: {c}" for r, c in enumerate(counts))
        raise ValueError(
            f"every rank must pass the same number of examples to a global selection ({shown}); "
            "drop the uneven last batch (DataLoader(drop_last=True)) or pad every rank alike"
        )


def take_share(selection: GlobalSelection, inputs: Any, labels: Tensor | None = None):
    """``(inputs, labels, weights)`` of this rank's share, from this rank's own examples.

    The share may hold other ranks' examples, so the super-batch's inputs and labels are
    all-gathered first (one collective per tensor; inputs must be a tensor or a tuple of
    tensors). A loop that holds the whole super-batch on every rank can index it with
    ``selection.share`` instead and skip the gather.
    """
    world = selection.world
    x = index_inputs(all_gather_inputs(inputs, world), selection.share)
    y = None if labels is None else all_gather_rows(labels, world).index_select(0, selection.share)
    return x, y, selection.share_weights


def observe_global(scorer: Scorer, ids: Tensor, losses: Tensor, world: World) -> None:
    """Hand every rank's trained ``ids`` and ``losses`` to ``scorer.observe`` on every rank, so a
    loss memory (``+stale``) stays the same everywhere (two all-gathers, no host sync)."""
    if scorer.remembers:
        scorer.observe(all_gather_rows(ids, world), all_gather_rows(losses.detach(), world))
