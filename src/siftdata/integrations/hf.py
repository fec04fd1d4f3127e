"""Online batch selection inside the Hugging Face ``Trainer``, through its public override points.

::

    from siftdata.integrations.hf import SelectiveTrainer

    method = build_method("learnability+stale", reference=reference_losses, example_ids=n)
    trainer = SelectiveTrainer(model=model, args=args, train_dataset=ds,   # ds has an "id" column
                               method=method, super_batch_factor=4)
    trainer.train()

* ``get_train_dataloader`` yields super-batches of ``super_batch_factor ×
  per_device_train_batch_size`` examples (the last incomplete one of an epoch is dropped, so
  every rank trains the same steps and accelerate never pads a super-batch with repeats);
* ``training_step`` scores the super-batch (one no-grad forward in eval mode, as
  :func:`siftdata.online.select_batch` does, or none for ``+stale`` and cached references),
  selects ``per_device_train_batch_size`` per device — one global selection over every rank's
  super-batch under ``torchrun`` — and hands the selection to the Trainer's own step (gradient
  accumulation, mixed precision, DDP as usual);
* ``compute_loss`` trains on the per-example losses (weighted where the method weighs) and
  hands them to a loss memory;
* ``log`` adds the selection's stats (``selection/<stat>``, averaged since the last log), so
  the Trainer's TensorBoard, MLflow or W&B callbacks receive them;
* every checkpoint holds the method's state (the selector's generator, the loss memory, the
  gate) in ``siftdata_selection.pt``, and ``train(resume_from_checkpoint=...)`` restores it, so a
  resumed run selects what an uninterrupted one would.

The id column (``id_column``) is kept through ``remove_unused_columns`` and the collator for
training and dropped before evaluation. An epoch of the Trainer is one pass over the
super-batches, so it trains on ``1 / super_batch_factor`` of the data: give ``max_steps`` to
compare with uniform training at a budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

try:
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
except ImportError as err:  # the extra is not installed
    raise ImportError(
        "the Hugging Face integration needs the hf extra: pip install 'siftdata[hf]' (after "
        "torch, so that pip keeps the installed build)"
    ) from err

from .._validation import check_int_range
from ..core.scores import per_example_loss
from ..distributed import World, all_gather_rows, world_of
from ..distributed.selection import check_equal_shares
from ..online.methods import SelectionMethod
from ..scoring.scorers import check_missing, needs_forward
from ..training.steps import unwrap
from ._steps import remember, select_share
from .hf_reference import LABELS, LiveReference, reference_losses

__all__ = ["SelectiveTrainer", "STATE_FILE", "LiveReference", "reference_losses"]

STATE_FILE = "siftdata_selection.pt"
"""The method's state in each checkpoint folder."""


def _logits(model: nn.Module, features: dict[str, Tensor]) -> Tensor:
    """The scoring forward of a Hugging Face model: ``model(**features).logits``."""
    return model(**features).logits


class SelectiveTrainer(Trainer):
    """A :class:`transformers.Trainer` that trains each step on a selection from a super-batch.

    Parameters
    ----------
    method:
        What to score and how to choose (:func:`siftdata.online.build_method`, or a
        :class:`~siftdata.online.SelectionMethod` of your own scorer and selector); a method
        without a scorer trains uniformly on the first ``b`` of each super-batch.
    super_batch_factor:
        ``B / b``: the super-batch is this many per-device batches.
    id_column:
        The dataset column of example ids (what cached references and loss memories are keyed
        by); kept for training even when ``remove_unused_columns`` would drop it.
    loss_fn:
        Per-example loss of ``(logits, labels)``; default cross-entropy (single-label
        classification).
    on_trained:
        Called with the ids this rank trains on at every (micro-)step, on the device (e.g. to
        count how often each example is chosen; no host sync unless it makes one).
    live_reference:
        A :class:`LiveReference` the method scores with (``build_method(...,
        reference=live)``): the trainer runs its reference forward on every scored super-batch.
    Other arguments are the Trainer's.
    """

    def __init__(
        self,
        *args: Any,
        method: SelectionMethod,
        super_batch_factor: int = 4,
        id_column: str = "id",
        loss_fn: Callable[[Tensor, Tensor], Tensor] = per_example_loss,
        on_trained: Callable[[Tensor], None] | None = None,
        live_reference: LiveReference | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_trained = on_trained
        self.live_reference = live_reference
        self.method = method
        self.super_batch_factor = check_int_range(super_batch_factor, "super_batch_factor", low=1)
        self.id_column = id_column
        self.loss_fn = loss_fn
        self.model_accepts_loss_kwargs = False  # compute_loss returns this batch's mean loss:
        self.loss_is_scaled_for_ga = False  # the Trainer divides it for gradient accumulation
        self.selection_steps = 0
        self.scoring_forwards = 0  # super-batches scored with a forward (the compute count)
        self._pending: tuple[Tensor, Tensor | None, bool] | None = None
        self._stat_sums: dict[str, Tensor] = {}
        self._stat_count = 0
        self.add_callback(_SaveSelectionState(self))

    @property
    def world(self) -> World:
        """The ranks the selection spans (torchrun's, or one process)."""
        return world_of()

    # --- data -----------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self.id_column not in self._signature_columns:
            self._signature_columns.append(self.id_column)

    def get_train_dataloader(self):
        """Super-batches of ``super_batch_factor × per_device_train_batch_size`` examples."""
        if self.train_dataset is None:
            raise ValueError("SelectiveTrainer: training requires a train_dataset")
        drop_last = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = True  # equal, full super-batches on every rank
        try:
            return self._get_dataloader(
                dataset=self.train_dataset,
                description="Training",
                batch_size=self._train_batch_size * self.super_batch_factor,
                sampler_fn=self._get_train_sampler,
                is_training=True,
            )
        finally:
            self.args.dataloader_drop_last = drop_last

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = {k: v for k, v in inputs.items() if k != self.id_column}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    # --- the step -------------------------------------------------------------------------

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None):
        """Select from the super-batch ``inputs``, then the Trainer's step on the selection."""
        self._check_columns(inputs)
        features = {k: v for k, v in inputs.items() if k not in (self.id_column, LABELS)}
        ids, labels = inputs[self.id_column], inputs[LABELS]
        m, b = self.method, self.args.per_device_train_batch_size
        scoring = m.selects and m.policy.should_score(self.selection_steps)
        if scoring:
            features, labels, ids, weights = self._selection(model, features, labels, ids, b)
        else:  # uniform, or a gate that does not score now: the first b of the super-batch
            first = slice(0, min(b, ids.shape[0]))
            features = {k: v[first] for k, v in features.items()}
            ids, labels, weights = ids[first], labels[first], None
        self._pending = (ids, weights, scoring)
        if self.on_trained is not None:
            self.on_trained(ids)
        try:
            return super().training_step(model, {**features, LABELS: labels}, num_items_in_batch)
        finally:
            self._pending = None
            self.selection_steps += 1

    def _check_columns(self, inputs: dict[str, Any]) -> None:
        if self.id_column not in inputs:
            raise ValueError(
                f"the training batch has no {self.id_column!r} column (example ids): add one to "
                f"the dataset, or name yours with id_column=; it has {sorted(inputs)}"
            )
        if LABELS not in inputs:
            raise ValueError(
                f"the training batch has no {LABELS!r} (the collator renames a 'label' column to "
                f"it); it has {sorted(inputs)}"
            )

    def _selection(self, model, features, labels, ids, b: int):
        """``(features, labels, ids, weights)`` of this rank's share of the global selection."""
        m, world = self.method, self.world
        k = self._share_size(ids, b, world)
        self.scoring_forwards += needs_forward(m.scorer)
        if self.live_reference is not None:
            self.live_reference.compute(features, labels, world, self.loss_fn)
        share, ids, weights, stats = select_share(
            unwrap(model),
            features,
            labels,
            ids,
            k=k * world.size,
            method=m,
            world=world,
            loss_fn=self.loss_fn,
            forward=m.scoring_forward or _logits,
        )
        self._add_stats(stats)
        features, labels = _share_of(features, labels, share, world)
        return features, labels, ids, weights

    def _share_size(self, ids: Tensor, b: int, world: World) -> int:
        """``b``; the last super-batch of a stream may be short (the same on every rank, as
        accelerate deals it): then ``min(b, rows)``, checked equal across ranks (a host sync,
        only then)."""
        rows = ids.shape[0]
        if rows == b * self.super_batch_factor:
            return b
        if world.distributed:
            check_equal_shares(rows, world, ids.device)
        return min(b, rows)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The selection's (weighted) mean per-example loss; the losses go to a loss memory."""
        if self._pending is None:  # evaluation, or a step the Trainer runs itself
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        ids, weights, scoring = self._pending
        features = {k: v for k, v in inputs.items() if k != LABELS}
        labels = inputs[LABELS]
        outputs = model(**features)
        losses = self.loss_fn(outputs.logits, labels)
        loss = (losses * weights).mean() if weights is not None else losses.mean()
        remember(self.method, self.world, scoring, ids, labels, outputs.logits, losses.detach())
        return (loss, outputs) if return_outputs else loss

    # --- logging --------------------------------------------------------------------------

    def _add_stats(self, stats: dict[str, Tensor]) -> None:
        for name, value in stats.items():
            value = value.detach().float()
            self._stat_sums[name] = self._stat_sums.get(name, 0) + value
        self._stat_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log, with the selection's stats since the last log on training logs."""
        if "loss" in logs and self.method.selects:
            for name, value in self.take_selection_stats().items():
                logs[f"selection/{name}"] = value
        super().log(logs, start_time)

    def take_selection_stats(self) -> dict[str, float]:
        """Each selection stat averaged since the last call (one host sync), then reset; ids
        missing from a cached reference since then are raised here."""
        if self.method.selects:
            check_missing(self.method.scorer)
        stats = {name: float(total) / self._stat_count for name, total in self._stat_sums.items()}
        self._stat_sums, self._stat_count = {}, 0
        return stats

    # --- checkpoints ----------------------------------------------------------------------

    def selection_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the selection."""
        return {
            "method": self.method.state_dict(),
            "selection_steps": self.selection_steps,
            "scoring_forwards": self.scoring_forwards,
        }

    def load_selection_state(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        self.selection_steps = int(state["selection_steps"])
        self.scoring_forwards = int(state["scoring_forwards"])

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        """The Trainer's ``train``; a resumed run first restores the selection's state."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
        if resume_from_checkpoint:
            path = os.path.join(resume_from_checkpoint, STATE_FILE)
            if not os.path.isfile(path):
                raise ValueError(
                    f"{resume_from_checkpoint} holds no {STATE_FILE}: it was not written by a "
                    "SelectiveTrainer, so the selection could not continue where it stopped"
                )
            self.load_selection_state(torch.load(path, map_location="cpu", weights_only=False))
        return super().train(resume_from_checkpoint, *args, **kwargs)


class _SaveSelectionState(TrainerCallback):
    """Writes the selection's state into each checkpoint folder the Trainer saves."""

    def __init__(self, trainer: SelectiveTrainer) -> None:
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                torch.save(self.trainer.selection_state(), os.path.join(folder, STATE_FILE))
        return control


def _share_of(features: dict[str, Tensor], labels, share: Tensor, world: World):
    """This rank's share of the global selection: rows of every rank's super-batch, gathered
    (token tensors right-padded with 0 to the longest on any rank, masked by the attention
    mask), then indexed."""
    if not world.distributed:
        return {k: v.index_select(0, share) for k, v in features.items()}, labels.index_select(
            0, share
        )
    width = _longest(features, world)
    gathered = {}
    for name, value in features.items():
        if value.dim() >= 2 and value.shape[1] < width:
            value = nn.functional.pad(value, (0, width - value.shape[1]))
        gathered[name] = all_gather_rows(value, world).index_select(0, share)
    return gathered, all_gather_rows(labels, world).index_select(0, share)


def _longest(features: dict[str, Tensor], world: World) -> int:
    """The longest sequence on any rank (one all-reduce)."""
    lengths = [v.shape[1] for v in features.values() if v.dim() >= 2]
    device = next(iter(features.values())).device
    longest = torch.tensor([max(lengths, default=0)], device=device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX, group=world.group)
    return int(longest.item())
