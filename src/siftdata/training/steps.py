"""One run's wired parts and its step: draw, score, select, train, remember — on one process or
on every rank of a process group, with one global selection.

On ``W`` ranks every rank draws the same global super-batch (the batch source is seeded alike),
scores its ``B / W`` share, and the scorer's inputs are all-gathered
(:mod:`siftdata.distributed`); every rank then makes the same selection of ``b`` and trains on
its ``b / W`` share through the caller's ``DistributedDataParallel`` model, whose gradient
all-reduce averages the shares' mean losses into the mean over all ``b``. What the training
forward computed (losses for a loss memory or an epoch-pruning source, bounds for a τ gate) is
gathered too, so every rank's state stays identical to a one-process run's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .. import schedules
from .._batch import index_inputs
from ..distributed import World, all_gather_rows, gather_scoring_batch, observe_global, shard
from ..ledger import ComputeLedger
from ..online.policies import observes, policy_stats
from ..online.step import LossFn, choose, forward_for_scoring
from ..scoring.scorers import ScoringBatch, check_missing
from .checkpoint import global_rng_state, set_global_rng_state
from .recorder import Recorder
from .run_state import CHECKPOINT_FORMAT
from .selection_log import SelectionLog
from .sources import BatchSource, WeightedSource

__all__ = ["Loop", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` (or any wrapper with ``.module``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Loop:
    """The wired parts of one run and its step counter; each part saves its own state.

    ``model`` may be a ``DistributedDataParallel``: the training forward goes through it (its
    gradient all-reduce), scoring and evaluation use the module inside (no collective there).
    """

    def __init__(self, model, method, data, config, parts: dict[str, Any], world: World) -> None:
        self.model, self.method, self.data, self.config = model, method, data, config
        self.module = unwrap(model)
        self.world = world
        self.optimizer: torch.optim.Optimizer = parts["optimizer"]
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.source: BatchSource = parts["source"]
        self.loss_fn: LossFn = parts["loss_fn"]
        self.ledger: ComputeLedger = parts["ledger"]
        self.recorder: Recorder = parts["recorder"]
        self.selection_log: SelectionLog | None = parts.get("selection_log")
        self.super_batch = config.super_batch_size(selects=method.selects, name=repr(method.name))
        self.weighted_source = isinstance(self.source, WeightedSource)
        self.ids_are_positions = torch.equal(
            data.ids, torch.arange(len(data), device=data.ids.device)
        )
        self.step = 0

    def lr_factor(self) -> float:
        c = self.config
        return schedules.lr_factor(
            self.step, c.steps, schedule=c.schedule, warmup_steps=c.warmup_steps
        )

    def train_step(self) -> Tensor:
        """One (selection +) update step; returns the ids trained on (by every rank)."""
        c, m, w = self.config, self.method, self.world
        scoring = m.selects and m.policy.should_score(self.step)
        size = self.super_batch if scoring else c.batch_size
        with self.ledger.track("score", ("super-batch", size, scoring and m.needs_forward)):
            positions = self.source.next(size)
            offered, ids = positions, self._ids(positions)
            x = y = batch = None
            if scoring:
                x, y, batch = self._scoring_batch(positions, ids)
        weights, stats = None, {}
        if scoring:
            with self.ledger.track("select", ("select", size)):
                keep, weights, stats = self._select(batch)
                positions, ids = positions.index_select(0, keep), ids.index_select(0, keep)
                if x is not None and not w.distributed:
                    x, y = index_inputs(x, keep), y.index_select(0, keep)
        trained, trained_ids = positions, ids
        if w.distributed:  # this rank's share of the selection; its inputs from the pool
            positions, ids, x = shard(positions, w), shard(ids, w), None
            weights = None if weights is None else shard(weights, w)
        if x is None:
            x, y = self._gather(positions)
        weights = _times(weights, self._source_weights(positions))
        outputs, losses, loss = self._update(x, y, weights)
        self._remember(scoring, ids, positions, y, outputs, losses.detach())
        self.recorder.after_step(loss.detach(), trained, {**stats, **policy_stats(m.policy)})
        if self.selection_log is not None:
            self.selection_log.after_step(offered, trained, scoring)
        self.step += 1
        return trained_ids

    def _scoring_batch(self, positions: Tensor, ids: Tensor):
        """``(x, y, batch)``: this rank's share of the super-batch (when the scorer needs a
        forward) and the scorer's inputs over the whole super-batch."""
        m, w = self.method, self.world
        x = y = None
        if m.needs_forward:
            x, y = self._gather(shard(positions, w))
        local = forward_for_scoring(
            self.module,
            x,
            y,
            shard(ids, w) if m.needs_forward else ids,
            needs=m.scorer.needs,
            loss_fn=self.loss_fn,
            forward=m.scoring_forward,
        )
        labels = None  # the super-batch's labels, when the gather needs them (one process: not)
        if w.distributed and y is not None:
            labels = self.data.labels.index_select(0, positions)
        return x, y, gather_scoring_batch(local, w, needs=m.scorer.needs, ids=ids, labels=labels)

    def _source_weights(self, positions: Tensor) -> Tensor | None:
        """The batch source's loss weights (an epoch-pruning source up-weights what it keeps)."""
        return self.source.weights(positions) if self.weighted_source else None

    def _remember(self, scoring, ids, positions, y, outputs, losses) -> None:
        """Hand on what the training forward computed anyway (no extra forward, no sync): losses
        to a loss memory and to an epoch-pruning source, bounds of the batch to a τ gate; from
        every rank's share when there are several."""
        m, w = self.method, self.world
        if self.weighted_source:
            self.source.observe(all_gather_rows(positions, w), all_gather_rows(losses, w))
        remembers = m.selects and m.scorer.remembers
        watches = observes(m.policy) and not scoring and outputs is not None
        if not (remembers or watches):
            return
        with self.ledger.track("remember", ("remember", self.config.batch_size, watches)):
            if remembers:
                observe_global(m.scorer, ids, losses, w)
            if watches:  # τ from the trained batch while the gate does not score
                batch = ScoringBatch(ids=ids, labels=y, outputs=outputs.detach(), loss=losses)
                m.policy.observe(m.scorer(gather_scoring_batch(batch, w, needs=m.scorer.needs)))

    def _ids(self, positions: Tensor) -> Tensor:
        return positions if self.ids_are_positions else self.data.ids.index_select(0, positions)

    def _gather(self, positions: Tensor) -> tuple[Any, Tensor]:
        """Inputs and labels at pool ``positions`` (index_select: cheaper than ``t[idx]``)."""
        d = self.data
        return index_inputs(d.inputs, positions), d.labels.index_select(0, positions)

    def _select(self, batch) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        m = self.method
        scores = m.scorer(batch)
        if self.config.check_values:
            values = scores if isinstance(scores, Tensor) else scores.diagonal()
            check_step_values(values, "scores", self.step)
        selection = choose(scores, self.config.batch_size, m.selector)
        if observes(m.policy):
            m.policy.observe(scores)
        return selection.indices, selection.weights, selection.stats

    def _update(self, x: Any, y: Tensor, weights: Tensor | None) -> tuple[Any, Tensor, Tensor]:
        """One optimizer step; returns the outputs (``None`` with a ``train_forward``), the
        per-example losses and the (weighted) mean loss of this rank's share."""
        share = self.config.batch_size // self.world.size
        with self.ledger.track("train", ("train", share)):
            schedules.set_lr(self.optimizer, self.base_lrs, self.lr_factor())
            outputs = None
            if self.method.train_forward is None:
                outputs = self.model(x)
                losses = self.loss_fn(outputs, y)
            else:
                losses = self.method.train_forward.losses(
                    self.model,
                    x,
                    y,
                    self.loss_fn,
                    low_model=self.module,  # DDP sees one forward per backward
                    part=(self.world.rank * share, self.config.batch_size),
                )
            loss = (losses * weights).mean() if weights is not None else losses.mean()
            if self.config.check_values:
                check_step_values(losses, "training losses", self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return outputs, losses, loss

    def check_finite(self) -> None:
        """Raise :class:`~siftdata.training.recorder.DivergedError` if a step's loss was NaN or
        inf, on every rank alike when one rank's share diverged (a collective with several)."""
        self._agree_on_divergence()
        self.recorder.check_finite()

    def _agree_on_divergence(self) -> None:
        """Every rank takes the latest first-bad step any rank saw (no sync; a collective)."""
        if self.world.distributed:
            self.recorder.fold()
            worst = self.recorder.first_bad.clone()
            dist.all_reduce(worst, op=dist.ReduceOp.MAX, group=self.world.group)
            self.recorder.first_bad = worst

    def _average_loss_over_ranks(self) -> None:
        """Every rank's loss sum becomes the ranks' mean (equal shares: the mean of the ranks'
        means is the mean); averaging again later changes nothing already averaged."""
        if self.world.distributed:
            self.recorder.fold()
            dist.all_reduce(self.recorder.loss_sum, group=self.world.group)
            self.recorder.loss_sum /= self.world.size

    def record(self) -> dict[str, Any]:
        """Evaluate and append a record (on every rank; the training loss averaged over ranks)."""
        check_missing(self.method.scorer)  # ids without a cached score, met since the last record
        self._agree_on_divergence()  # the recorder checks it, on every rank alike
        self._average_loss_over_ranks()
        return self.recorder.record(
            self.module, step=self.step, lr=self.base_lrs[0] * self.lr_factor()
        )

    def state_dict(self, identity: dict[str, Any]) -> dict[str, Any]:
        """The run's state; with several ranks a collective (every rank's RNG state is kept, and
        the loss since the last record is averaged so rank 0's copy holds the run's)."""
        self._average_loss_over_ranks()
        rng = global_rng_state()
        if self.world.distributed:
            states: list[Any] = [None] * self.world.size
            dist.all_gather_object(states, rng, group=self.world.group)
            rng = {"ranks": states}
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "identity": identity,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(),
            "source": self.source.state_dict(),
            "recorder": self.recorder.state_dict(),
            "rng": rng,
            **(
                {}
                if self.selection_log is None
                else {"selections": self.selection_log.state_dict()}
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        self.source.load_state_dict(state["source"])
        self.recorder.load_state_dict(state["recorder"])
        rng = state["rng"]
        set_global_rng_state(rng["ranks"][self.world.rank] if "ranks" in rng else rng)
        self.step = int(state["step"])
        if self.selection_log is not None:
            if "selections" not in state:
                raise ValueError(
                    f"the checkpoint at step {self.step} was written without a selection log "
                    "(--record-selections): the log would miss the steps before it; resume "
                    "without it, or start again in another folder"
                )
            self.selection_log.load_state_dict(state["selections"], self.step)


def _times(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """The product of two optional weight vectors."""
    if a is None or b is None:
        return b if a is None else a
    return a * b


def check_step_values(values: Tensor, what: str, step: int) -> None:
    """``check_values`` mode: raise at once, naming the step, on a NaN or inf (host sync)."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            f"step {step + 1}: the {what} hold NaN or inf; the learner has diverged or the data "
            "holds non-finite values"
        )
