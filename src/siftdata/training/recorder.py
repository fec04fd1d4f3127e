"""Evaluation records for the training loop, and the counters kept on the device between them.

Per step the loop hands the :class:`Recorder` the training loss, the trained positions and the
selection's stats; it adds them to tensors on the device (no host sync). At an evaluation it reads
them once, checks that training has not diverged (naming the first step whose loss was NaN or
inf), evaluates the model and appends a record.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._files import atomic_write_text
from ..ledger import ComputeLedger
from ..models.evaluation import evaluate

__all__ = [
    "COUNTED_PHASES",
    "Evaluator",
    "ClassificationEvaluator",
    "DivergedError",
    "Recorder",
    "write_records",
]

COUNTED_PHASES = ("reference", "score", "select", "remember", "train")
"""Phases whose FLOPs and seconds count towards "compute to target": the reference's cache fill
(its training is added only in the end-to-end figures), learner scoring, selection, remembering
losses, and the training step. Evaluation is excluded for every method alike."""

_BUFFER = 1024  # per-step losses held on the device between reductions

Evaluator = Callable[[nn.Module], dict[str, float]]
"""Evaluates the model: returns at least ``{"test_acc": ...}`` (the benchmarks' metric)."""


class ClassificationEvaluator:
    """Test accuracy and loss of a classifier on a fixed test set (the default evaluator)."""

    def __init__(self, inputs: Tensor, labels: Tensor, *, batch_size: int = 2048) -> None:
        self.inputs, self.labels, self.batch_size = inputs, labels, batch_size

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return evaluate(model, self.inputs, self.labels, batch_size=self.batch_size)


class DivergedError(ValueError):
    """The training loss became NaN or inf."""


class Recorder:
    """Evaluation records plus device-side running counters between evaluations.

    Parameters
    ----------
    ledger:
        The run's compute ledger (its totals go into each record).
    evaluator:
        Called at each evaluation.
    device:
        Where the counters live (the model's device).
    batch_size:
        ``b``, to count examples trained.
    is_corrupted:
        Optional ``(N,)`` bool over pool positions (known label noise), to report the share of
        trained examples that were mislabeled.
    tags:
        Fixed fields added to every record (method, seed, budget, ...).
    """

    def __init__(
        self,
        *,
        ledger: ComputeLedger,
        evaluator: Evaluator,
        device: torch.device,
        batch_size: int,
        is_corrupted: Tensor | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.ledger, self.evaluator, self.batch_size = ledger, evaluator, batch_size
        self.is_corrupted, self.tags = is_corrupted, dict(tags or {})
        self.records: list[dict[str, Any]] = []
        zero = torch.zeros((), device=device)
        self.corrupted = zero.long()
        # selection stats since the last record, and how many steps produced each
        self.stat_sums: dict[str, Tensor] = {}
        self.stat_counts: dict[str, int] = {}
        # Per-step losses are written to a buffer (one op per step) and reduced at evaluations,
        # checkpoints, or when the buffer fills: into a loss sum, and the first step whose loss was
        # NaN or inf (-1 if none), all on the device.
        self.buffer = torch.empty(_BUFFER, device=device)
        self.filled, self.buffered_from = 0, 0  # entries in the buffer; step index of entry 0
        self.first_bad = zero.long() - 1
        self.loss_sum, self.window = zero.clone(), 0

    def after_step(self, loss: Tensor, positions: Tensor, stats: dict[str, Tensor]) -> None:
        """Add one step's loss, trained positions and stats to the device counters (no sync)."""
        self.buffer[self.filled].copy_(loss)
        self.filled += 1
        self.window += 1
        if self.filled == _BUFFER:
            self._fold()
        if self.is_corrupted is not None:
            self.corrupted += self.is_corrupted.index_select(0, positions).sum()
        for name, value in stats.items():
            value = value.detach().float()
            total = self.stat_sums.get(name)
            self.stat_sums[name] = value if total is None else total + value
            self.stat_counts[name] = self.stat_counts.get(name, 0) + 1

    def fold(self) -> None:
        """Move the buffered step losses into :attr:`loss_sum` (no sync), e.g. before averaging
        it over ranks."""
        self._fold()

    def _fold(self) -> None:
        """Reduce the loss buffer into the loss sum and the first non-finite step (no sync)."""
        if not self.filled:
            return
        losses = self.buffer[: self.filled]
        bad = ~torch.isfinite(losses)
        first_here = torch.where(bad.any(), bad.int().argmax() + self.buffered_from, -1)
        self.first_bad = torch.where(self.first_bad < 0, first_here, self.first_bad)
        self.loss_sum += losses.sum()
        self.buffered_from += self.filled
        self.filled = 0

    def check_finite(self) -> None:
        """Raise :class:`DivergedError` if any step so far had a NaN or inf loss (one host sync)."""
        self._fold()
        first = int(self.first_bad)
        if first >= 0:
            raise DivergedError(
                f"the learner diverged: its training loss was NaN or inf at step {first + 1}. The "
                "last checkpoint (if any) holds the state before it; lower the learning rate "
                "(--lr) or add a warm-up (--warmup-steps)."
            )

    def record(self, model: nn.Module, *, step: int, lr: float) -> dict[str, Any]:
        """Evaluate, and append a record of the costs and counters so far."""
        self.check_finite()  # folds the loss buffer too
        with self.ledger.track("eval", ("eval",)):
            metrics = self.evaluator(model)
        totals = self.ledger.totals()
        flops = sum(totals[p]["flops"] for p in COUNTED_PHASES)
        seconds = sum(totals[p]["seconds"] for p in COUNTED_PHASES)
        trained = step * self.batch_size
        rec = {
            **self.tags,
            "step": step,
            "examples_trained": trained,
            **metrics,
            "train_loss": float(self.loss_sum) / self.window if self.window else None,
            "lr": lr,
            "flops": flops,
            "flops_end_to_end": flops + totals["reference_train"]["flops"],
            "seconds": seconds,
            "seconds_end_to_end": seconds + totals["reference_train"]["seconds"],
            "flops_by_phase": {p: totals[p]["flops"] for p in totals},
            "seconds_by_phase": {p: totals[p]["seconds"] for p in totals},
            "mislabeled_selected": self._mislabeled_share(trained),
            "selection_stats": {
                k: float(v) / self.stat_counts[k] for k, v in self.stat_sums.items()
            },
        }
        self.loss_sum.zero_()
        self.window, self.stat_sums, self.stat_counts = 0, {}, {}
        self.records.append(rec)
        _warn_nonfinite(rec)
        return rec

    def _mislabeled_share(self, trained: int) -> float | None:
        if self.is_corrupted is None or not trained:
            return None
        return float(self.corrupted) / trained

    def state_dict(self) -> dict[str, Any]:
        self._fold()
        return {
            "records": self.records,
            "ledger": self.ledger.state_dict(),
            "buffered_from": self.buffered_from,
            "first_bad": self.first_bad,
            "corrupted": self.corrupted,
            "loss_sum": self.loss_sum,
            "window": self.window,
            "stat_sums": self.stat_sums,
            "stat_counts": self.stat_counts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.buffer.device
        self.records = [dict(r) for r in state["records"]]
        self.ledger.load_state_dict(state["ledger"])
        for name in ("first_bad", "corrupted", "loss_sum"):
            setattr(self, name, state[name].to(device))
        self.filled, self.buffered_from = 0, int(state["buffered_from"])
        self.window = int(state["window"])
        self.stat_sums = {k: v.to(device) for k, v in state["stat_sums"].items()}
        self.stat_counts = {k: int(v) for k, v in state["stat_counts"].items()}


def _warn_nonfinite(rec: dict[str, Any]) -> None:
    """Say so when scores were NaN or inf since the last record (they got the lowest priority)."""
    per_step = rec["selection_stats"].get("nonfinite_scores", 0.0)
    if per_step > 0:
        warnings.warn(
            f"{per_step:.3g} NaN or infinite scores per step on average before step "
            f"{rec['step']}; they were given the lowest priority (check the scorer and the data)",
            RuntimeWarning,
            stacklevel=3,
        )


def write_records(path: str | Path | None, records: list[dict[str, Any]]) -> None:
    """Rewrite ``path`` with one JSON record per line (so a resumed run never duplicates one)."""
    if path is None:
        return
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
