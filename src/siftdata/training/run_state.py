"""A run's identity (what a checkpoint must match) and how a run starts: resumed from its
checkpoint, or charged for its reference and recorded at step 0."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._files import atomic_write_text
from ..distributed import leader_first
from ..store import dataset_fingerprint
from .checkpoint import RESTART_HINT, CheckpointError, check_identity, load_checkpoint
from .config import WATCH_OPTIONS, TrainConfig, TrainData

__all__ = ["CHECKPOINT_FORMAT", "identity_file", "run_identity", "start_run"]

CHECKPOINT_FORMAT = 1


def run_identity(
    model, method, data: TrainData, config: TrainConfig, extra, world=None
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: options, data, model shapes, method, and the
    world size when there are several ranks (each rank's share of a step depends on it)."""
    options = {k: v for k, v in asdict(config).items() if k not in WATCH_OPTIONS}
    if config.schedule == "constant":  # a constant-LR run may be extended with more steps
        options.pop("steps")
    identity = {
        "method": method.describe(),
        "train": options,
        "data": dataset_fingerprint(data.labels, data.inputs),
        "model": {k: list(v.shape) for k, v in model.state_dict().items()},
        **(extra or {}),
    }
    if world is not None and world.distributed:
        identity["world_size"] = world.size
    return identity


def _resume(loop, path: Path, identity: dict[str, Any]) -> int:
    state = load_checkpoint(path, expect_format=CHECKPOINT_FORMAT)
    check_identity(state.get("identity"), identity, path)
    if int(state["step"]) > loop.config.steps:
        raise CheckpointError(
            f"{path} is at step {state['step']}, past steps={loop.config.steps}; give at least "
            f"{state['step']} steps to continue it, or use another output folder"
        )
    try:
        loop.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} could not be restored ({err}); {RESTART_HINT}") from err
    if loop.world.rank == 0:
        print(f"siftdata: resuming from step {loop.step} ({path})", file=sys.stderr)
    return loop.step


def identity_file(ckpt: Path) -> Path:
    """Where a run's identity is written when it starts, before its first checkpoint."""
    return ckpt.with_name(ckpt.name + ".identity.json")


def _claim_identity(ckpt: Path, identity: dict[str, Any]) -> None:
    """Write the run's identity beside its future checkpoint, or check the one written there by
    an earlier start of a run that never checkpointed (another run's is refused, naming what
    differs, before any of its files is touched)."""
    path = identity_file(ckpt)
    normal = json.loads(json.dumps(identity, default=str))
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except ValueError as err:
            raise CheckpointError(f"{path} could not be read ({err}); {RESTART_HINT}") from err
        check_identity(saved, normal, path)
    else:
        atomic_write_text(path, json.dumps(normal, indent=2, sort_keys=True) + "\n")


def start_run(loop, ckpt: Path | None, run_id, reference_cost) -> int | None:
    """Resume from the checkpoint, or claim the run, charge the reference and record step 0."""
    if ckpt is not None and ckpt.exists():
        return _resume(loop, ckpt, run_id)
    if ckpt is not None:
        with leader_first(loop.world):  # another run's identity stops every rank
            if loop.world.rank == 0:
                _claim_identity(ckpt, run_id)
    if reference_cost is not None:
        loop.ledger.add(
            "reference", flops=reference_cost.forward_flops, seconds=reference_cost.forward_seconds
        )
        loop.ledger.add(
            "reference_train",
            flops=reference_cost.train_flops,
            seconds=reference_cost.train_seconds,
        )
    loop.record()
    return None
