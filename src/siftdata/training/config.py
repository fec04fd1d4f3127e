"""The training loop's options and inputs: :class:`TrainConfig`, :class:`TrainData`, and the one-off
:class:`ReferenceCost` of a reference model whose cached losses a run uses."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from .. import schedules
from .._batch import Inputs, batch_len, inputs_to
from .._config import check_bool, check_choice, check_float_field, check_int_field, option

__all__ = ["WATCH_OPTIONS", "TrainConfig", "TrainData", "ReferenceCost"]


WATCH_OPTIONS = (
    "progress",
    "checkpoint_every",
    "eval_every",
    "eval_batch_size",
    "check_values",
    "record_selections",
)
"""Options that change only how a run is watched, not what it computes: free to differ on resume."""


@dataclass
class TrainConfig:
    """Options of :func:`train` (the CLI's options of the same names come from here)."""

    steps: int = option(3000, "learner update steps")
    batch_size: int = option(64, "b: examples per update step")
    super_batch_factor: float = option(
        10.0, "B / b: the super-batch a selecting method scores (uniform draws b)"
    )
    lr: float = option(1e-3, "AdamW's base learning rate")
    weight_decay: float = option(1e-2, "AdamW's weight decay")
    schedule: str = option(
        "constant",
        "LR schedule: constant, or cosine/linear decay to 0 at the run's last step",
        choices=schedules.SCHEDULES,
    )
    warmup_steps: int = option(0, "linear LR warm-up steps")
    eval_every: int = option(100, "evaluate every this many steps (and at the first and last)")
    eval_batch_size: int = option(2048, "batch size of evaluation forwards")
    seed: int = option(0, "base seed (data order, initialisation and selection derive from it)")
    checkpoint_every: int = option(500, "steps between checkpoints (0: none)")
    check_values: bool = option(
        False, "check every step's values (finite scores and losses, label range): host syncs"
    )
    progress: bool = option(True, "show progress bars")
    record_selections: bool = option(
        False,
        "write the selection log: every step's selected ids and each example's offered and "
        "selected counts, in the run folder's selections/",
    )

    def __post_init__(self) -> None:
        check_int_field(self.steps, "steps", low=1)
        check_int_field(self.batch_size, "batch_size", low=1)
        check_float_field(self.super_batch_factor, "super_batch_factor", low=1.0)
        check_float_field(self.lr, "lr", low=0.0, low_open=True)
        check_float_field(self.weight_decay, "weight_decay", low=0.0)
        check_choice(self.schedule, "schedule", schedules.SCHEDULES)
        check_int_field(self.warmup_steps, "warmup_steps", low=0, high=self.steps - 1)
        check_int_field(self.eval_every, "eval_every", low=1)
        check_int_field(self.eval_batch_size, "eval_batch_size", low=1)
        check_int_field(self.seed, "seed", low=0)
        check_int_field(self.checkpoint_every, "checkpoint_every", low=0)
        check_bool(self.check_values, "check_values")
        check_bool(self.progress, "progress")

    def super_batch_size(self, *, selects: bool, name: str = "the method") -> int:
        """``B``: ``round(super_batch_factor · b)`` for a method that selects, ``b`` otherwise.

        Raises ``ValueError`` when a selecting method's ``B`` would not exceed ``b``: it would pay
        for scoring and select nothing.
        """
        if not selects:
            return self.batch_size
        big_b = round(self.super_batch_factor * self.batch_size)
        if big_b <= self.batch_size:
            raise ValueError(
                f"super_batch_factor {self.super_batch_factor} gives a super-batch of {big_b} "
                f"for b = {self.batch_size}: {name} would pay for scoring and select nothing; "
                "use a factor with round(factor · b) > b, or the uniform method"
            )
        return big_b


@dataclass
class TrainData:
    """In-memory training data. Example ids are positions ``0 … N−1`` of the pool unless given.

    ``inputs`` (and ``test_inputs``) are a tensor, or a tuple of tensors with the examples along
    dim 0 for a model that takes several (a two-tower model's ``(images, tokens)``).
    """

    inputs: Inputs
    labels: Tensor
    test_inputs: Inputs
    test_labels: Tensor
    ids: Tensor | None = None
    """Example ids (what cached scores are keyed by), unique integers, one per pool example."""
    is_corrupted: Tensor | None = None
    """Which pool labels were corrupted (known in benchmarks), to report the mislabeled share."""

    def __post_init__(self) -> None:
        n = batch_len(self.inputs)
        if self.labels.shape != (n,):
            raise ValueError(
                f"labels must have shape ({n},) to match inputs, got {tuple(self.labels.shape)}"
            )
        if self.test_labels.shape != (batch_len(self.test_inputs, "test_inputs"),):
            raise ValueError("test_labels must have one label per test input")
        if self.ids is None:
            self.ids = torch.arange(n, device=self.labels.device)
        if self.ids.shape != (n,) or self.ids.is_floating_point():
            raise ValueError(f"ids must be integers of shape ({n},), got {tuple(self.ids.shape)}")
        if self.is_corrupted is not None and self.is_corrupted.shape != (n,):
            raise ValueError(f"is_corrupted must have shape ({n},)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> TrainData:
        """A copy with every tensor on ``device`` (no copy for tensors already there)."""
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: inputs_to(v, device) for k, v in parts.items() if v is not None})


@dataclass(frozen=True)
class ReferenceCost:
    """One-off costs of a reference model, charged to a run that uses its cached losses (or, for
    contrastive pairs, its cached embeddings)."""

    forward_flops: int = 0
    """Filling the cache (a forward over the pool): counted in the run's compute."""
    forward_seconds: float = 0.0
    train_flops: int = 0
    """Training the reference: reported separately, added in the end-to-end figures."""
    train_seconds: float = 0.0
