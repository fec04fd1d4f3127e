"""A reference training loop with online batch selection, composed of parts a user can swap.

Per step: the batch source hands out a super-batch of ``B = super_batch_factor · b`` pool positions
(``b`` when the method does not score this step), :func:`~siftdata.online.select_batch`'s pieces
score it (one no-grad learner forward only if the scorer needs it) and keep ``b``, and one
optimizer step trains on them with the per-example loss function (weighted when the selector
returns weights). The parts: a :class:`~siftdata.training.sources.BatchSource`, a loss function, an
optimizer with an LR schedule (:mod:`siftdata.schedules`), a :class:`~siftdata.training.recorder.Recorder`
with its evaluator, and checkpoints (:mod:`siftdata.training.checkpoint`). Every phase is timed and its FLOPs
counted by a :class:`~siftdata.ledger.ComputeLedger`; nothing in a step waits for the device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import schedules
from .._batch import index_inputs
from .._seeding import derive_seed
from ..core.scores import per_example_loss
from ..ledger import ComputeLedger
from ..online.methods import SelectionMethod
from ..online.step import LossFn, choose, forward_for_scoring
from ..scoring.scorers import ScoringBatch, check_missing
from .checkpoint import (
    global_rng_state,
    save_checkpoint,
    set_global_rng_state,
)
from .config import ReferenceCost, TrainConfig, TrainData
from .preflight import check_before_training
from .recorder import ClassificationEvaluator, Evaluator, Recorder, write_records
from .run_folder import run_folder_lock
from .run_state import CHECKPOINT_FORMAT, identity_file, run_identity, start_run
from .sources import BatchSource, SuperBatchStream, WeightedSource

__all__ = ["TrainConfig", "TrainData", "ReferenceCost", "TrainResult", "default_optimizer", "train"]

"""Version of the training state a checkpoint holds; another version is refused, not misread."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the evaluation records and the ledger's totals."""

    records: list[dict[str, Any]]
    ledger: dict[str, dict[str, float | int]]
    steps: int
    resumed_from: int | None = None


class _Loop:
    """The wired parts of one run and its step counter; each part saves its own state."""

    def __init__(self, model, method, data, config, parts: dict[str, Any]) -> None:
        self.model, self.method, self.data, self.config = model, method, data, config
        self.optimizer: torch.optim.Optimizer = parts["optimizer"]
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.source: BatchSource = parts["source"]
        self.loss_fn: LossFn = parts["loss_fn"]
        self.ledger: ComputeLedger = parts["ledger"]
        self.recorder: Recorder = parts["recorder"]
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
        """One (selection +) update step; returns the trained example ids."""
        c, m = self.config, self.method
        scoring = m.selects and m.policy.should_score(self.step)
        size = self.super_batch if scoring else c.batch_size
        with self.ledger.track("score", ("super-batch", size, scoring and m.needs_forward)):
            positions = self.source.next(size)
            ids = self._ids(positions)
            x = y = batch = None
            if scoring:
                if m.needs_forward:
                    x, y = self._gather(positions)
                batch = forward_for_scoring(
                    self.model,
                    x,
                    y,
                    ids,
                    needs=m.scorer.needs,
                    loss_fn=self.loss_fn,
                    forward=m.scoring_forward,
                )
        weights, stats = None, {}
        if scoring:
            with self.ledger.track("select", ("select", size)):
                keep, weights, stats = self._select(batch)
                positions, ids = positions.index_select(0, keep), ids.index_select(0, keep)
                if x is not None:
                    x, y = index_inputs(x, keep), y.index_select(0, keep)
        if x is None:
            x, y = self._gather(positions)
        weights = _times(weights, self._source_weights(positions))
        outputs, losses, loss = self._update(x, y, weights)
        self._remember(scoring, ids, positions, y, outputs, losses.detach())
        self.recorder.after_step(loss.detach(), positions, {**stats, **_policy_stats(m.policy)})
        self.step += 1
        return ids

    def _source_weights(self, positions: Tensor) -> Tensor | None:
        """The batch source's loss weights (an epoch-pruning source up-weights what it keeps)."""
        return self.source.weights(positions) if self.weighted_source else None

    def _remember(self, scoring, ids, positions, y, outputs, losses) -> None:
        """Hand on what the training forward computed anyway (no extra forward, no sync): losses
        to a loss memory and to an epoch-pruning source, bounds of the batch to a τ gate."""
        m = self.method
        if self.weighted_source:
            self.source.observe(positions, losses)
        remembers = m.selects and m.scorer.remembers
        watches = _observes(m.policy) and not scoring and outputs is not None
        if not (remembers or watches):
            return
        with self.ledger.track("remember", ("remember", self.config.batch_size, watches)):
            if remembers:
                m.scorer.observe(ids, losses)
            if watches:  # τ from the trained batch while the gate does not score
                batch = ScoringBatch(ids=ids, labels=y, outputs=outputs.detach(), loss=losses)
                m.policy.observe(m.scorer(batch))

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
            _check_step_values(values, "scores", self.step)
        selection = choose(scores, self.config.batch_size, m.selector)
        if _observes(m.policy):
            m.policy.observe(scores)
        return selection.indices, selection.weights, selection.stats

    def _update(self, x: Any, y: Tensor, weights: Tensor | None) -> tuple[Any, Tensor, Tensor]:
        """One optimizer step; returns the outputs (``None`` with a ``train_forward``), the
        per-example losses and the (weighted) mean loss."""
        with self.ledger.track("train", ("train", self.config.batch_size)):
            schedules.set_lr(self.optimizer, self.base_lrs, self.lr_factor())
            outputs = None
            if self.method.train_forward is None:
                outputs = self.model(x)
                losses = self.loss_fn(outputs, y)
            else:
                losses = self.method.train_forward.losses(self.model, x, y, self.loss_fn)
            loss = (losses * weights).mean() if weights is not None else losses.mean()
            if self.config.check_values:
                _check_step_values(losses, "training losses", self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return outputs, losses, loss

    def record(self) -> dict[str, Any]:
        check_missing(self.method.scorer)  # ids without a cached score, met since the last record
        return self.recorder.record(
            self.model, step=self.step, lr=self.base_lrs[0] * self.lr_factor()
        )

    def state_dict(self, identity: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "identity": identity,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(),
            "source": self.source.state_dict(),
            "recorder": self.recorder.state_dict(),
            "rng": global_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        self.source.load_state_dict(state["source"])
        self.recorder.load_state_dict(state["recorder"])
        set_global_rng_state(state["rng"])
        self.step = int(state["step"])


def _times(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """The product of two optional weight vectors."""
    if a is None or b is None:
        return b if a is None else a
    return a * b


def _observes(policy: Any) -> bool:
    """Whether a scoring policy watches per-example scores (importance sampling's τ gate)."""
    return getattr(policy, "observes", False)


def _policy_stats(policy: Any) -> dict[str, Tensor]:
    return policy.stats() if _observes(policy) else {}


def _check_step_values(values: Tensor, what: str, step: int) -> None:
    """``check_values`` mode: raise at once, naming the step, on a NaN or inf (host sync)."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            f"step {step + 1}: the {what} hold NaN or inf; the learner has diverged or the data "
            "holds non-finite values"
        )


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("the model has no parameters to train")
    return param.device


def default_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused where the parameters' device supports it (no host sync, one kernel per step).

    The unfused implementations read each parameter's step counter with ``.item()``: on a GPU that
    counter lives on the CPU, so it costs no sync there, but the fused kernel is faster anyway.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train(
    model: nn.Module,
    method: SelectionMethod,
    data: TrainData,
    config: TrainConfig,
    *,
    loss_fn: LossFn = per_example_loss,
    optimizer: torch.optim.Optimizer | None = None,
    source: BatchSource | None = None,
    evaluator: Evaluator | None = None,
    reference_cost: ReferenceCost | None = None,
    tags: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
    metrics_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> TrainResult:
    """Train ``model`` with ``method``'s online selection; resume from ``checkpoint_path`` if it exists.

    Parameters
    ----------
    model:
        The learner; its device is where all per-step work happens (the data is moved there).
    method:
        Scorer, selector and policy (:func:`siftdata.online.build_method`, or built by hand).
    data:
        The pool and the test set.
    config:
        Steps, batch sizes, optimizer, schedule, evaluation and checkpoint settings.
    loss_fn:
        Per-example training loss ``loss_fn(outputs, labels) -> (b,)``.
    optimizer:
        Defaults to :func:`default_optimizer` (AdamW with ``config.lr`` and
        ``config.weight_decay``); its learning rate follows ``config.schedule``.
    source:
        Where pool positions come from (default: a :class:`~siftdata.training.sources.SuperBatchStream`).
    evaluator:
        Defaults to test accuracy and loss on ``data.test_inputs``.
    reference_cost:
        One-off costs of the reference whose cached losses the method uses.
    tags:
        Fields added to every record (the method name and seed are always added).
    identity:
        Extra fields a checkpoint must match to be resumed (e.g. a scenario's data options).
    metrics_path:
        Where to write one JSON record per evaluation (rewritten in full after each one).
    checkpoint_path:
        File to save to every ``config.checkpoint_every`` steps; if it exists the run resumes from
        it (after checking it belongs to this run) and makes exactly the selections an
        uninterrupted run would have made.
    on_step:
        Called as ``on_step(step, trained_ids)`` after every update (logging, tests).
    """
    device = _device_of(model)
    data = data.to(device)
    check_before_training(model, method, data, config, loss_fn)
    parts = _parts(model, method, data, config, device, loss_fn, optimizer, source, evaluator, tags)
    loop = _Loop(model, method, data, config, parts)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    run_id = run_identity(model, method, data, config, identity) if ckpt is not None else None
    with _on_device(device), contextlib.ExitStack() as stack:
        if ckpt is not None:
            stack.enter_context(run_folder_lock(ckpt.parent, name=f".{ckpt.name}.lock"))
        return _run(loop, ckpt, run_id, metrics_path, on_step, reference_cost)


def _on_device(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` the current CUDA device (where timing events and bare "cuda" tensors go)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _parts(model, method, data, config, device, loss_fn, optimizer, source, evaluator, tags):
    """The loop's swappable parts, with their defaults."""
    ledger = ComputeLedger(device=device)
    super_batch = config.super_batch_size(selects=method.selects, name=repr(method.name))
    return {
        "optimizer": optimizer or default_optimizer(model, config),
        "source": source
        or SuperBatchStream(
            len(data),
            seed=derive_seed(config.seed, "super-batch-order"),
            device=device,
            max_size=super_batch,
        ),
        "loss_fn": loss_fn,
        "ledger": ledger,
        "recorder": Recorder(
            ledger=ledger,
            evaluator=evaluator
            or ClassificationEvaluator(
                data.test_inputs, data.test_labels, batch_size=config.eval_batch_size
            ),
            device=device,
            batch_size=config.batch_size,
            is_corrupted=data.is_corrupted,
            tags={"method": method.name, "seed": config.seed, **(tags or {})},
        ),
    }


def _run(loop: _Loop, ckpt, run_id, metrics_path, on_step, reference_cost) -> TrainResult:
    config, model = loop.config, loop.model
    resumed_from = start_run(loop, ckpt, run_id, reference_cost)
    if not model.training:  # a partly frozen model (e.g. BatchNorm in eval) stays as it is
        model.train()
    bar = tqdm(
        total=config.steps,
        initial=loop.step,
        disable=not config.progress,
        desc=loop.method.name,
        leave=False,
    )
    while loop.step < config.steps:
        ids = loop.train_step()
        bar.update(1)
        if on_step is not None:
            on_step(loop.step, ids)
        if loop.step % config.eval_every == 0 or loop.step == config.steps:
            bar.set_postfix(acc=f"{loop.record()['test_acc']:.4f}")
            write_records(metrics_path, loop.recorder.records)
        if (
            ckpt is not None
            and config.checkpoint_every
            and loop.step % config.checkpoint_every == 0
        ):
            loop.recorder.check_finite()  # never overwrite a good checkpoint with a diverged state
            save_checkpoint(ckpt, loop.state_dict(run_id))
            identity_file(ckpt).unlink(missing_ok=True)  # the checkpoint holds it from now on
    bar.close()
    write_records(metrics_path, loop.recorder.records)
    return TrainResult(loop.recorder.records, loop.ledger.totals(), loop.step, resumed_from)
