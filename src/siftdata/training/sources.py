"""Batch sources: where the training loop's examples come from, as pool positions on the device.

A :class:`BatchSource` hands out ``size`` pool positions per call; the loop asks for a super-batch
of ``B`` when it will score and select, and for ``b`` when it will not. Today's source is the
epoch-wise shuffled :class:`SuperBatchStream`. A :class:`WeightedSource` also weights the losses
of what it hands out and is told the training losses back: the epoch-pruning
:class:`~siftdata.online.infobatch.InfoBatchSource` is one. Distributed shards plug in here too.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .._validation import check_int_range, check_seed

__all__ = ["BatchSource", "WeightedSource", "SuperBatchStream"]


@runtime_checkable
class BatchSource(Protocol):
    """Pool positions, ``size`` at a time, resumable through ``state_dict``."""

    def next(self, size: int) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class WeightedSource(BatchSource, Protocol):
    """A source whose examples carry loss weights, and which learns from the training losses."""

    def weights(self, positions: Tensor) -> Tensor:
        """``(len(positions),)`` loss weights of positions it handed out (no host sync)."""
        ...

    def observe(self, positions: Tensor, losses: Tensor) -> None:
        """The training losses of the trained ``positions`` (detached; no host sync)."""
        ...


class SuperBatchStream:
    """Epoch-wise shuffled pool positions: every position once per epoch, ragged tails dropped.

    Parameters
    ----------
    n : int
        Pool size.
    seed : int
        Seed of the stream's own CPU generator (CPU so that a checkpoint resumes on any device
        with the same order).
    device : torch.device or str
        Where the positions are handed out. Each epoch's order is drawn on the CPU and copied to
        the device once per epoch (from pinned memory, asynchronously, on CUDA); a call slices it
        there, with no host round-trip.
    max_size : int, optional
        The largest ``size`` that will be asked for (checked here, so a too-large super-batch
        fails before training starts).
    """

    def __init__(self, n: int, *, seed: int = 0, device="cpu", max_size: int | None = None) -> None:
        self.n = check_int_range(n, "n (the pool size)", low=1)
        if max_size is not None:
            check_int_range(max_size, "super-batch size", low=1, high=n)
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(check_seed(seed))
        self.cursor, self.epoch = 0, 0
        self._shuffle()

    def _shuffle(self) -> None:
        self.order_cpu = torch.randperm(self.n, generator=self.generator)
        self.order = self._to_device(self.order_cpu)

    def _to_device(self, order: Tensor) -> Tensor:
        if self.device.type != "cuda":
            return order.to(self.device)
        return order.pin_memory().to(self.device, non_blocking=True)

    def next(self, size: int) -> Tensor:
        """The next ``size`` positions (a new epoch starts when fewer than ``size`` remain)."""
        if not 0 < size <= self.n:
            raise ValueError(f"size must be in [1, {self.n}] (the pool size), got {size}")
        if self.cursor + size > self.n:
            self._shuffle()
            self.cursor, self.epoch = 0, self.epoch + 1
        positions = self.order[self.cursor : self.cursor + size]
        self.cursor += size
        return positions

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order_cpu.clone(),
            "cursor": self.cursor,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["order"].shape != (self.n,):
            raise ValueError(
                f"the saved stream is over {state['order'].numel()} examples, not {self.n}"
            )
        self.generator.set_state(state["generator"].to("cpu"))
        self.order_cpu = state["order"].to("cpu").clone()
        self.order = self._to_device(self.order_cpu)
        self.cursor, self.epoch = int(state["cursor"]), int(state["epoch"])
