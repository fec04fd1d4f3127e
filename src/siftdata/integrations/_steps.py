"""The selection step the trainers' integrations share: select this rank's share of one global
selection, and hand on what the training forward computed (the loop's own ``training/steps.py``
does the same for its data layout)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..distributed import World, observe_global, shard
from ..distributed.gather import gather_scoring_batch
from ..online.methods import SelectionMethod
from ..online.policies import observes, policy_stats
from ..online.step import LossFn, ScoringForward, choose, forward_for_scoring
from ..scoring.scorers import ScoringBatch

__all__ = ["select_share", "remember"]


def select_share(
    model: nn.Module,
    inputs: Any,
    labels: Tensor | None,
    ids: Tensor,
    *,
    k: int,
    method: SelectionMethod,
    world: World,
    loss_fn: LossFn,
    forward: ScoringForward | None,
) -> tuple[Tensor, Tensor, Tensor | None, dict[str, Tensor]]:
    """One global selection of ``k`` over every rank's super-batch (this rank's is ``inputs``):
    ``(positions, ids, weights, stats)`` of this rank's share, the positions into the global
    super-batch (rank ``r``'s rows first at ``r·B/W``); no host sync."""
    m = method
    local = forward_for_scoring(
        model, inputs, labels, ids, needs=m.scorer.needs, loss_fn=loss_fn, forward=forward
    )
    batch = gather_scoring_batch(local, world, needs=m.scorer.needs)
    scores = m.scorer(batch)
    selection = choose(scores, k, m.selector)
    stats = dict(selection.stats)
    if observes(m.policy):
        m.policy.observe(scores)
        stats.update(policy_stats(m.policy))
    chosen = batch.ids.index_select(0, selection.indices)
    weights = None if selection.weights is None else shard(selection.weights, world)
    return shard(selection.indices, world), shard(chosen, world), weights, stats


def remember(
    method: SelectionMethod, world: World, scoring: bool, ids, labels, outputs, losses
) -> None:
    """Trained losses to a loss memory (every rank's), and the trained batch to a τ gate that did
    not score this step."""
    m = method
    if not m.selects:
        return
    if m.scorer.remembers:
        observe_global(m.scorer, ids, losses.detach(), world)
    if not scoring and observes(m.policy):
        batch = ScoringBatch(ids=ids, labels=labels, outputs=outputs.detach(), loss=losses)
        m.policy.observe(m.scorer(gather_scoring_batch(batch, world, needs=m.scorer.needs)))
