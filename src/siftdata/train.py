"""A reference training loop with online batch selection: super-batches, scoring, selection, evaluation,
metrics as JSONL and checkpoint/resume.

It is the loop the demo and benchmarks run, written to be read top to bottom; it is not a framework.
Per step: draw a super-batch of ``B = super_batch_factor · b`` pool examples, score them (learner
forward without grad; reference losses looked up by example id), keep ``b`` with the method's
selector, and take one optimizer step on them. Every phase is timed and its FLOPs counted by a
:class:`~siftdata.ledger.ComputeLedger`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._seeding import derive_seed
from .ledger import ComputeLedger
from .online.loss_memory import LossMemory
from .online.methods import OnlineMethod
from .scores import per_example_loss
from .store import ScoreTable

__all__ = ["TrainConfig", "TrainData", "TrainResult", "SuperBatchStream", "evaluate", "train"]

# Phases whose FLOPs and seconds count towards "compute to target" (reference training is reported
# separately, evaluation is excluded for every method alike).
COUNTED_PHASES = ("reference", "score", "select", "train")


@dataclass
class TrainConfig:
    """Options of :func:`train`."""

    steps: int = 3000
    """Learner update steps."""
    batch_size: int = 64
    """``b``: examples per update step."""
    super_batch_factor: float = 10.0
    """``B / b``; ignored (treated as 1) for uniform selection, which scores nothing."""
    lr: float = 1e-3
    """AdamW learning rate (the prototype's setting)."""
    weight_decay: float = 1e-2
    """AdamW weight decay (PyTorch's default)."""
    eval_every: int = 100
    """Evaluate on the clean test set every this many steps (and at the first and last step)."""
    eval_batch_size: int = 2048
    """Batch size of evaluation forwards."""
    seed: int = 0
    """Seed of the super-batch order (derived per purpose; the selector has its own generator)."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many steps (0: never)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.super_batch_factor >= 1.0 or math.isinf(self.super_batch_factor):
            raise ValueError(f"super_batch_factor must be >= 1, got {self.super_batch_factor}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def super_batch_size(self, method: OnlineMethod) -> int:
        """``B`` for this method: ``b`` when nothing is scored."""
        return (
            self.batch_size
            if not method.needs_learner_loss and not method.needs_reference_loss
            else round(self.super_batch_factor * self.batch_size)
        )


@dataclass
class TrainData:
    """In-memory training data. Example ids are positions ``0 … N−1`` of the pool unless given."""

    inputs: Tensor
    labels: Tensor
    test_inputs: Tensor
    test_labels: Tensor
    ids: Tensor | None = None
    is_corrupted: Tensor | None = None
    """Which pool labels were corrupted (known in benchmarks), to report the mislabeled share."""
    reference_losses: ScoreTable | None = None
    """Cached reference (irreducible) losses keyed by example id."""
    reference_forward_flops: int = 0
    """One-off FLOPs of filling the reference cache; charged to the "reference" phase at step 0."""
    reference_forward_seconds: float = 0.0
    """Wall-clock of filling the reference cache; charged likewise."""
    reference_train_flops: int = 0
    """FLOPs of training the reference; reported separately ("reference_train")."""
    reference_train_seconds: float = 0.0

    def __post_init__(self) -> None:
        n = self.inputs.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(
                f"labels must have shape ({n},) to match inputs, got {tuple(self.labels.shape)}"
            )
        if self.test_labels.shape != (self.test_inputs.shape[0],):
            raise ValueError("test_labels must have one label per test input")
        if self.ids is None:
            self.ids = torch.arange(n, device=self.inputs.device)
        if self.ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},), got {tuple(self.ids.shape)}")
        if self.is_corrupted is not None and self.is_corrupted.shape != (n,):
            raise ValueError(f"is_corrupted must have shape ({n},)")


@dataclass
class TrainResult:
    """What :func:`train` returns: the evaluation records and the ledger's totals."""

    records: list[dict[str, Any]]
    ledger: dict[str, dict[str, float]]
    steps: int


class SuperBatchStream:
    """Epoch-wise shuffled super-batches of pool positions from its own generator (resumable)."""

    def __init__(self, n: int, size: int, *, seed: int = 0, device="cpu") -> None:
        if not 0 < size <= n:
            raise ValueError(f"super-batch size must be in [1, {n}] (the pool size), got {size}")
        self.n, self.size, self.device = n, size, torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n, generator=self.generator)
        self.cursor = 0
        self.epoch = 0

    def next(self) -> Tensor:
        if self.cursor + self.size > self.n:  # drop the ragged tail, start a new epoch
            self.order = torch.randperm(self.n, generator=self.generator)
            self.cursor, self.epoch = 0, self.epoch + 1
        positions = self.order[self.cursor : self.cursor + self.size]
        self.cursor += self.size
        return positions.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order.clone(),
            "cursor": self.cursor,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.cursor, self.epoch = int(state["cursor"]), int(state["epoch"])


@torch.no_grad()
def evaluate(
    model: nn.Module, inputs: Tensor, labels: Tensor, *, batch_size: int = 2048
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(inputs, labels)``."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=inputs.device)
    total_loss = torch.zeros((), device=inputs.device)
    for start in range(0, inputs.shape[0], batch_size):
        logits = model(inputs[start : start + batch_size])
        y = labels[start : start + batch_size]
        correct += (logits.argmax(1) == y).sum()
        total_loss += nn.functional.cross_entropy(logits, y, reduction="sum")
    model.train(was_training)
    n = inputs.shape[0]
    return float(correct) / n, float(total_loss) / n


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # an interrupted save never leaves a half-written checkpoint


class _Run:
    """Mutable state of one training run (everything a checkpoint must restore)."""

    def __init__(self, model, method, config: TrainConfig, data: TrainData) -> None:
        self.device = next(model.parameters()).device
        self.model, self.method, self.config, self.data = model, method, config, data
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.super_batch = config.super_batch_size(method)
        self.stream = SuperBatchStream(
            data.inputs.shape[0],
            self.super_batch,
            seed=derive_seed(config.seed, "super-batch-order"),
            device=self.device,
        )
        self.ledger = ComputeLedger()
        self.memory = self._loss_memory() if method.learner_scores == "stale" else None
        n = data.inputs.shape[0]
        self.ids_are_positions = torch.equal(data.ids, torch.arange(n, device=data.ids.device))
        self.step = 0
        self.records: list[dict[str, Any]] = []
        self.corrupted_selected = torch.zeros((), dtype=torch.long, device=self.device)
        self.last_loss = torch.zeros((), device=self.device)

    def _loss_memory(self) -> LossMemory:
        """Stale losses start at ``log C``, an untrained classifier's loss (C from the labels)."""
        num_classes = int(self.data.labels.max()) + 1
        return LossMemory(
            self.data.inputs.shape[0], initial=math.log(max(num_classes, 2)), device=self.device
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory.state_dict() if self.memory is not None else None,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "selector": self.method.selector.state_dict(),
            "stream": self.stream.state_dict(),
            "ledger": self.ledger.state_dict(),
            "records": self.records,
            "corrupted_selected": self.corrupted_selected,
            "method": self.method.name,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["method"] != self.method.name:
            raise ValueError(
                f"checkpoint is for method {state['method']!r}, not {self.method.name!r}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.selector.load_state_dict(state["selector"])
        self.stream.load_state_dict(state["stream"])
        self.ledger.load_state_dict(state["ledger"])
        if self.memory is not None:
            self.memory.load_state_dict(state["memory"])
        self.records = list(state["records"])
        self.corrupted_selected = state["corrupted_selected"].to(self.device)
        self.step = int(state["step"])

    def charge_reference(self) -> None:
        """One-off costs of the reference: filling the cache (counted) and training (separate)."""
        if not self.method.needs_reference_loss:
            return
        d = self.data
        self.ledger.add(
            "reference", flops=d.reference_forward_flops, seconds=d.reference_forward_seconds
        )
        self.ledger.add(
            "reference_train", flops=d.reference_train_flops, seconds=d.reference_train_seconds
        )

    def train_step(self) -> Tensor:
        """One selection + update step; returns the selected example ids."""
        b, big_b, d, m = self.config.batch_size, self.super_batch, self.data, self.method
        with self.ledger.track("score", (big_b, m.learner_scores)):
            positions = self.stream.next()
            learner_loss = self._fresh_learner_loss(positions) if m.scores_fresh else None
        weights = None
        if big_b > b:
            with self.ledger.track("select", (big_b,)):
                positions, weights = self._select(positions, learner_loss)
        x, y = self._gather(positions)
        with self.ledger.track("train", (b,)):
            losses = per_example_loss(self.model(x), y, validate=False)
            loss = (losses * weights).mean() if weights is not None else losses.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if self.memory is not None:
            with self.ledger.track("select", ("remember", b)):
                self.memory.update(positions, losses, validate=False)
        self.last_loss = loss.detach()
        if d.is_corrupted is not None:
            self.corrupted_selected += d.is_corrupted.index_select(0, positions).sum()
        self.step += 1
        return d.ids.index_select(0, positions)

    def _gather(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs and labels at pool ``positions`` (index_select: cheaper than ``t[idx]``)."""
        d = self.data
        return d.inputs.index_select(0, positions), d.labels.index_select(0, positions)

    def _fresh_learner_loss(self, positions: Tensor) -> Tensor:
        """The learner's loss on the whole super-batch (no grad): the "score" phase's forward."""
        x, y = self._gather(positions)
        with torch.no_grad():
            return per_example_loss(self.model(x), y, validate=False)

    def _select(
        self, positions: Tensor, learner_loss: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Score the super-batch and keep ``b`` of it: the selected positions and their weights."""
        d, m = self.data, self.method
        if self.memory is not None:
            learner_loss = self.memory.lookup(positions, validate=False)
        reference_loss = None
        if m.needs_reference_loss:
            ids = positions if self.ids_are_positions else d.ids.index_select(0, positions)
            reference_loss = d.reference_losses.lookup(ids, validate=False)
        scores = m.score(learner_loss, reference_loss)
        if scores is None:
            scores = torch.zeros(positions.shape[0], device=self.device)
        selection = m.select(scores, self.config.batch_size)
        return positions.index_select(0, selection.indices), selection.weights

    def check_finite_loss(self) -> None:
        """Raise if the last training loss is NaN or inf (one host sync; run before saving state)."""
        loss = float(self.last_loss)
        if not math.isfinite(loss):
            raise ValueError(
                f"the training loss is {loss} at step {self.step}: the learner diverged; the last "
                "checkpoint (if any) holds the state before it. Lower the learning rate."
            )

    def record(self) -> dict[str, Any]:
        """Evaluate on the clean test set and append a metrics record."""
        self.check_finite_loss()
        d, c = self.data, self.config
        with self.ledger.track("eval", ("eval",)):
            acc, test_loss = evaluate(
                self.model, d.test_inputs, d.test_labels, batch_size=c.eval_batch_size
            )
        totals = self.ledger.totals()
        selected = self.step * c.batch_size
        rec = {
            "step": self.step,
            "examples_trained": selected,
            "test_acc": acc,
            "test_loss": test_loss,
            "train_loss": float(self.last_loss),
            "flops": sum(totals[p]["flops"] for p in COUNTED_PHASES),
            "seconds": sum(totals[p]["seconds"] for p in COUNTED_PHASES),
            "flops_by_phase": {p: totals[p]["flops"] for p in totals},
            "seconds_by_phase": {p: totals[p]["seconds"] for p in totals},
            "mislabeled_selected": (
                float(self.corrupted_selected) / selected
                if d.is_corrupted is not None and selected
                else None
            ),
        }
        self.records.append(rec)
        return rec


def _write_records(
    path: Path | None, records: list[dict[str, Any]], method: str, seed: int
) -> None:
    if path is None:
        return
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps({"method": method, "seed": seed, **r}) + "\n")


def train(
    model: nn.Module,
    method: OnlineMethod,
    data: TrainData,
    config: TrainConfig,
    *,
    metrics_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    on_step: Callable[[int, Tensor], None] | None = None,
) -> TrainResult:
    """Train ``model`` with ``method``'s online selection; resume from ``checkpoint_path`` if it exists.

    Parameters
    ----------
    model:
        The learner; its device is where all per-step work happens.
    method:
        Score rule and selector (:func:`siftdata.online.build_method`).
    data:
        Pool, test set and (for reference-based methods) the cached reference losses.
    config:
        Steps, batch sizes, optimizer and evaluation settings.
    metrics_path:
        Where to write one JSON record per evaluation (rewritten in full after each evaluation, so a
        resumed run never duplicates records).
    checkpoint_path:
        File to save to every ``config.checkpoint_every`` steps; if it exists the run resumes from it
        and makes exactly the selections an uninterrupted run would have made.
    on_step:
        Called as ``on_step(step, selected_ids)`` after every update (logging, tests).
    """
    if method.needs_reference_loss and data.reference_losses is None:
        raise ValueError(
            f"method {method.name!r} needs data.reference_losses (a reference-loss cache)"
        )
    if (
        method.needs_reference_loss
    ):  # every pool id must be in the cache; checked once, not per step
        data.reference_losses.lookup(data.ids)
    run = _Run(model, method, config, data)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    metrics = Path(metrics_path) if metrics_path is not None else None
    if ckpt is not None and ckpt.exists():
        run.load_state_dict(torch.load(ckpt, map_location=run.device, weights_only=False))
    else:
        run.charge_reference()
        run.record()
    model.train()
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        disable=not config.progress,
        desc=method.name,
        leave=False,
    )
    while run.step < config.steps:
        ids = run.train_step()
        bar.update(1)
        if on_step is not None:
            on_step(run.step, ids)
        if run.step % config.eval_every == 0 or run.step == config.steps:
            rec = run.record()
            bar.set_postfix(acc=f"{rec['test_acc']:.4f}")
            _write_records(metrics, run.records, method.name, config.seed)
        if ckpt is not None and config.checkpoint_every and run.step % config.checkpoint_every == 0:
            run.check_finite_loss()  # never overwrite a good checkpoint with a diverged state
            _save_checkpoint(ckpt, run.state_dict())
    bar.close()
    _write_records(metrics, run.records, method.name, config.seed)
    return TrainResult(records=run.records, ledger=run.ledger.totals(), steps=run.step)
