"""Online batch selection in Lightning: a callback that owns the method, and a ``training_step``
helper.

::

    from siftdata.integrations.lightning import SelectionCallback, selective_step

    class Learner(L.LightningModule):
        def training_step(self, batch, batch_idx):      # batch: (ids, x, y), a super-batch
            return selective_step(self, batch, self.trainer.selection)

    selection = SelectionCallback(method, super_batch_factor=4)
    trainer = L.Trainer(callbacks=[selection], strategy="ddp", devices=2, accelerator="cpu")
    trainer.selection = selection                        # or keep it on the module
    trainer.fit(Learner(), DataLoader(WithIndex(dataset), batch_size=4 * b, shuffle=True))

The DataLoader yields super-batches of ``B = super_batch_factor × b`` rows ``(id, x, y)``
(:class:`siftdata.data.WithIndex`); :func:`selective_step` scores them (one no-grad forward in
eval mode, or none for ``+stale`` and cached references), selects ``b`` per device — one global
selection over every rank's super-batch under the ``ddp`` strategy — trains on its share and
returns the loss for Lightning's own backward and optimizer step. The callback's state (the
selector's generator, the loss memory, the gate) is saved in Lightning's checkpoints and
restored by ``fit(ckpt_path=...)``; the stats go through ``LightningModule.log_dict`` as
``selection/<stat>``, so Lightning's loggers receive them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._batch import index_inputs
from .._validation import check_int_range
from ..core.scores import per_example_loss
from ..distributed import all_gather_rows, world_of
from ..distributed.gather import all_gather_inputs
from ..online.methods import SelectionMethod
from ..online.step import ScoringForward
from ._steps import remember, select_share

try:
    import lightning.pytorch as pl
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
except ImportError as err:  # the extra is not installed
    raise ImportError(
        "the Lightning integration needs the lightning extra: pip install 'siftdata[lightning]' "
        "(after torch, so that pip keeps the installed build)"
    ) from err

__all__ = ["SelectionCallback", "selective_step", "reordering_warning"]


class SelectionCallback(pl.Callback):
    """Holds the selection method, its step count and what it logs; saved in checkpoints.

    Parameters
    ----------
    method:
        What to score and how to choose (:func:`siftdata.online.build_method`); a method
        without a scorer trains on the first ``b`` of each super-batch.
    super_batch_factor:
        ``B / b``: each DataLoader batch is a super-batch of this many training batches.
    loss_fn:
        Per-example loss ``loss_fn(outputs, labels) -> (b,)``; default cross-entropy.
    forward:
        A cheaper scoring pass ``forward(module, x)`` in place of ``module(x)``.
    on_trained:
        Called with the ids this rank trains on at every step (on the device).
    """

    def __init__(
        self,
        method: SelectionMethod,
        *,
        super_batch_factor: int = 4,
        loss_fn: Callable[[Any, Tensor], Tensor] = per_example_loss,
        forward: ScoringForward | None = None,
        on_trained: Callable[[Tensor], None] | None = None,
    ) -> None:
        self.method = method
        self.super_batch_factor = check_int_range(super_batch_factor, "super_batch_factor", low=1)
        self.loss_fn = loss_fn
        self.forward = forward or method.scoring_forward
        self.on_trained = on_trained
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.state_dict(), "steps": self.steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.method.load_state_dict(state_dict["method"])
        self.steps = int(state_dict["steps"])

    def on_train_start(self, trainer, pl_module) -> None:
        message = reordering_warning(trainer.train_dataloader)
        if message is not None:
            warnings.warn(message, stacklevel=2)


def reordering_warning(loader: Any) -> str | None:
    """What to say when Lightning has wrapped an ordered sampler (``InfoBatchSampler``) in its
    distributed sampler, which shuffles and shards that order; ``None`` otherwise."""
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSamplerWrapper):
        return None
    inner = getattr(sampler.dataset, "_sampler", None)
    return (
        f"Lightning wrapped the training sampler ({type(inner).__name__}) in its "
        "DistributedSamplerWrapper, which shuffles and shards the sampler's order: an ordered "
        "sampler such as siftdata's InfoBatchSampler loses its epoch plan. Pass "
        "Trainer(use_distributed_sampler=False) and give each rank its own share of the order."
    )


def selective_step(pl_module: pl.LightningModule, batch: Any, selection: SelectionCallback):
    """The loss of this step's selection from the super-batch ``batch`` = ``(ids, x, y)``: call
    it from ``training_step`` and return what it returns."""
    ids, x, y = batch
    m, world, rows = selection.method, world_of(), ids.shape[0]
    if rows % selection.super_batch_factor:
        raise ValueError(
            f"a super-batch of {rows} rows is not {selection.super_batch_factor} training "
            "batches: give the DataLoader batch_size = super_batch_factor × b and drop_last=True"
        )
    b = rows // selection.super_batch_factor
    scoring = m.selects and m.policy.should_score(selection.steps)
    weights = None
    if scoring:
        positions, ids, weights, stats = select_share(
            pl_module,
            x,
            y,
            ids,
            k=b * world.size,
            method=m,
            world=world,
            loss_fn=selection.loss_fn,
            forward=selection.forward,
        )
        x = index_inputs(all_gather_inputs(x, world), positions)
        y = all_gather_rows(y, world).index_select(0, positions)
        pl_module.log_dict({f"selection/{k}": v.float() for k, v in stats.items()})
    else:
        first = torch.arange(b, device=ids.device)
        x, y, ids = index_inputs(x, first), y[:b], ids[:b]
    if selection.on_trained is not None:
        selection.on_trained(ids)
    outputs = pl_module(x)
    losses = selection.loss_fn(outputs, y)
    remember(m, world, scoring, ids, y, outputs, losses)
    selection.steps += 1
    return (losses * weights).mean() if weights is not None else losses.mean()
