"""The compute of a step shared by ranks, counted once for the whole step.

Each rank's :class:`~siftdata.ledger.ComputeLedger` counts its own share (a ``B/W`` scoring
forward, a ``b/W`` training step). :class:`RankSummedLedger` reports the run's compute: the
shared phases' FLOPs (scoring and training, split into shares) summed over ranks and their
seconds the slowest rank's (the wall-clock the step took); the phases every rank runs alike over
the gathered batch (selection, remembering), the one-off ones (the reference's cache fill and
training, done once) and evaluation as one rank counted them. A per-example method's FLOPs are
then a one-process run's; JEST's pair loss costs more on W ranks (each rank's rows and columns
against all b pairs: twice the one-process matrix), and that extra is counted.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..ledger import ComputeLedger
from .world import World

__all__ = ["RankSummedLedger", "SHARED_PHASES"]

SHARED_PHASES = ("score", "train")
"""Phases whose work the ranks split at every step (each does its share); the selection and the
remembering run alike on every rank over the gathered batch, so one rank's count is the run's."""


class RankSummedLedger:
    """A ledger whose :meth:`totals` is the whole run's — **a collective**: every rank must call
    it alike (the training loop does, at each record and at the end); tracking, adding and
    saving are this rank's own ledger's."""

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
