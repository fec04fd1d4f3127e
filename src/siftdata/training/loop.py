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

from .._seeding import derive_seed
from ..core.scores import per_example_loss
from ..distributed import World, leader_first
from ..distributed.ledger import RankSummedLedger
from ..ledger import ComputeLedger
from ..online.methods import SelectionMethod
from ..online.step import LossFn
from .checkpoint import save_checkpoint
from .config import ReferenceCost, TrainConfig, TrainData
from .preflight import check_before_training, check_same_source
from .recorder import ClassificationEvaluator, Evaluator, Recorder, write_records
from .run_folder import run_folder_lock
from .run_state import identity_file, run_identity, start_run
from .selection_log import SelectionLog
from .sources import BatchSource, SuperBatchStream
from .steps import Loop, unwrap

__all__ = ["TrainConfig", "TrainData", "ReferenceCost", "TrainResult", "default_optimizer", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns: the evaluation records and the ledger's totals."""

    records: list[dict[str, Any]]
    ledger: dict[str, dict[str, float | int]]
    steps: int
    resumed_from: int | None = None


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
    world: World | None = None,
    selection_log: str | Path | None = None,
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
        Called as ``on_step(step, trained_ids)`` after every update (logging, tests); the ids
        are those of the whole selection, on every rank.
    world:
        The ranks training together (:func:`siftdata.distributed.world_of`), each calling
        :func:`train` alike with a ``DistributedDataParallel`` model: every rank draws the same
        super-batches, they make one global selection and each trains on its ``b / W`` share.
        Rank 0 alone writes metrics and checkpoints and shows progress. Default: one process.
    selection_log:
        A folder for the run's selection log (:mod:`siftdata.training.selection_log`): every
        step's selected ids and per-example offered/selected counts, written with each
        checkpoint and at the end, resumed with the run.
    """
    world = world or World()
    device = _device_of(model)
    data = data.to(device)
    check_before_training(unwrap(model), method, data, config, loss_fn, world)
    if source is not None:  # the default source is seeded from the options the ranks agree on
        check_same_source(source, world)
    parts = _parts(model, method, data, config, device, loss_fn, optimizer, source, evaluator, tags)
    if selection_log is not None:
        parts["selection_log"] = SelectionLog(selection_log, data.ids, write=world.rank == 0)
    if world.distributed:  # the records count the whole step's compute, not one rank's share
        parts["recorder"].ledger = RankSummedLedger(parts["ledger"], world)
    loop = Loop(model, method, data, config, parts, world)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    run_id = None
    if ckpt is not None:
        run_id = run_identity(unwrap(model), method, data, config, identity, world)
    with _on_device(device), contextlib.ExitStack() as stack:
        with leader_first(world):  # a refused lock stops every rank, not rank 0 alone
            if ckpt is not None and world.rank == 0:
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


def _run(loop: Loop, ckpt, run_id, metrics_path, on_step, reference_cost) -> TrainResult:
    config, model = loop.config, loop.model
    lead = loop.world.rank == 0  # the one rank that writes and shows progress
    resumed_from = start_run(loop, ckpt, run_id, reference_cost)
    if not model.training:  # a partly frozen model (e.g. BatchNorm in eval) stays as it is
        model.train()
    metrics_path = metrics_path if lead else None
    bar = tqdm(
        total=config.steps,
        initial=loop.step,
        disable=not (config.progress and lead),
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
            loop.check_finite()  # never overwrite a good checkpoint with a diverged state
            state = loop.state_dict(run_id)  # a collective with several ranks
            if loop.selection_log is not None:
                loop.selection_log.flush(loop.step)  # the log as far as the checkpoint
            if lead:
                save_checkpoint(ckpt, state)
                identity_file(ckpt).unlink(missing_ok=True)  # the checkpoint holds it from now on
    bar.close()
    if loop.selection_log is not None:
        loop.selection_log.flush(loop.step)
    write_records(metrics_path, loop.recorder.records)
    return TrainResult(
        loop.recorder.records, loop.recorder.ledger.totals(), loop.step, resumed_from
    )
