"""The compute of a step shared by ranks, counted once for the whole step.

Each rank's :class:`~siftdata.ledger.ComputeLedger` counts its own share (a ``B/W`` scoring
forward, a ``b/W`` training step). :class:`RankSummedLedger` reports the run's compute: the
per-step phases' FLOPs summed over ranks (the work a one-process run does) and their seconds
the slowest rank's (the wall-clock the step took); the one-off phases (the reference's cache fill
and training, done once), and evaluation (every rank evaluates alike), as one rank counted them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..ledger import ComputeLedger
from .world import World

__all__ = ["RankSummedLedger", "SHARED_PHASES"]

SHARED_PHASES = ("score", "select", "remember", "train")
"""Phases whose work the ranks share at every step."""


class RankSummedLedger:
    """A ledger whose :meth:`totals` is the whole run's (a collective: every rank calls it alike);
    everything else is this rank's own ledger."""

    def __init__(self, ledger: ComputeLedger, world: World) -> None:
        self.ledger, self.world = ledger, world

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)

    def totals(self) -> dict[str, dict[str, float | int]]:
        totals = self.ledger.totals()
        if not self.world.distributed:
            return totals
        device = self.ledger.device
        flops = [float(totals[p]["flops"]) for p in SHARED_PHASES]
        flops = torch.tensor(flops, dtype=torch.float64, device=device)
        seconds = [float(totals[p]["seconds"]) for p in SHARED_PHASES]
        seconds = torch.tensor(seconds, dtype=torch.float64, device=device)
        dist.all_reduce(flops, group=self.world.group)  # float64: exact below 2**53
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX, group=self.world.group)
        for phase, f, s in zip(SHARED_PHASES, flops.tolist(), seconds.tolist(), strict=True):
            totals[phase] = {**totals[phase], "flops": int(round(f)), "seconds": s}
        return totals
