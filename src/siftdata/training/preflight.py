"""What a training run checks once, before its first step: mistakes that would otherwise cost a
run's compute, or give a plausible but wrong answer without a word."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from .._batch import index_inputs
from .._modes import eval_mode
from .._validation import check_class_labels
from ..core.pairwise import per_example_sigmoid_loss
from ..core.scores import per_example_loss
from ..distributed import World, check_same_on_every_rank, even_share
from ..online.methods import SelectionMethod
from ..online.policies import ScoreAfter
from ..online.step import LossFn
from ..store import dataset_fingerprint
from .config import TrainConfig, TrainData

__all__ = ["check_before_training", "check_same_source"]


def check_before_training(
    model: nn.Module,
    method: SelectionMethod,
    data: TrainData,
    config: TrainConfig,
    loss_fn: LossFn,
    world: World | None = None,
) -> None:
    """Raise ``ValueError`` for a warm-up that covers the whole run, pool ids without cached
    scores, class labels the model's outputs cannot hold (a few host syncs, once), or batch
    sizes the ranks cannot share evenly."""
    if world is not None and world.distributed:
        _check_ranks_agree(method, data, config, world)
        _check_shares(method, config, world)
        if loss_fn is per_example_sigmoid_loss:
            raise ValueError(
                "the pair loss of a rank's share would miss the other ranks' pairs (its "
                "negatives): pass loss_fn=siftdata.distributed.global_sigmoid_loss(world)"
            )
    shards = getattr(method.selector, "shards", 1)  # per-rank ("local") selection
    if method.selects and shards > 1:
        _check_shares(method, config, World(size=shards), " for local_shards")
    _check_policy(method, config)
    _check_cached_ids(method, data)
    _check_labels(model, data, loss_fn)


def _check_labels(model: nn.Module, data: TrainData, loss_fn: LossFn) -> None:
    """Class labels must fit the model's outputs: one forward of one example finds the class
    count (eval mode, no grad), then one host sync checks the pool and test labels."""
    if loss_fn is not per_example_loss or data.labels.is_floating_point() or len(data) == 0:
        return
    with eval_mode(model), torch.no_grad():
        first = torch.zeros(1, dtype=torch.int64, device=data.labels.device)
        outputs = model(index_inputs(data.inputs, first))
    if isinstance(outputs, Tensor) and outputs.dim() == 2:
        check_class_labels(data.labels, outputs.shape[1], "the pool's labels")
        check_class_labels(data.test_labels, outputs.shape[1], "the test labels")


def _check_ranks_agree(method, data: TrainData, config: TrainConfig, world: World) -> None:
    """Every rank must draw the same super-batches and select alike (one collective)."""
    facts = {
        "the options": repr(config),
        "the method": method.describe(),
        "the pool": dataset_fingerprint(data.labels, data.inputs),
        "the pool's ids": dataset_fingerprint(data.ids),
    }
    check_same_on_every_rank(facts, world)


def check_same_source(source: Any, world: World) -> None:
    """Every rank's batch source must hand out the same super-batches: its kind and the digest
    of its state (seed, generator, cursor) must agree (one collective)."""
    if world.distributed:
        facts = {"the batch source": f"{type(source).__name__} {_digest(source.state_dict())}"}
        check_same_on_every_rank(facts, world)


def _digest(state: Any) -> str:
    """A hash of a (nested) state dict's values: tensors by their bytes, the rest by repr."""
    h = hashlib.sha256()

    def add(value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                h.update(str(key).encode())
                add(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        elif isinstance(value, Tensor):
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())

    add(state)
    return h.hexdigest()[:16]


def _check_shares(
    method: SelectionMethod, config: TrainConfig, world: World, why: str = ""
) -> None:
    """Every rank (or local shard) trains ``b / W`` and scores ``B / W``: both must divide."""
    even_share(config.batch_size, world, f"batch_size (b, the examples trained per step){why}")
    if method.selects:
        big_b = config.super_batch_size(selects=True, name=repr(method.name))
        even_share(big_b, world, f"the super-batch (B = super_batch_factor · b){why}")


def _check_policy(method: SelectionMethod, config: TrainConfig) -> None:
    """A run whose uniform warm-up covers every step would never select: refuse it."""
    warmup = getattr(method.policy, "steps", None)
    if method.selects and isinstance(method.policy, ScoreAfter) and warmup >= config.steps:
        raise ValueError(
            f"uniform_steps ({warmup}) must be below steps ({config.steps}): the run would train "
            f"uniformly throughout and never select with {method.name!r}; lower "
            "--uniform-steps or use the uniform method"
        )


def _check_cached_ids(method: SelectionMethod, data: TrainData) -> None:
    """Every pool id must have its cached values (reference losses, ...): checked once, here."""
    if method.scorer is not None:
        method.scorer.check_ids(data.ids)
