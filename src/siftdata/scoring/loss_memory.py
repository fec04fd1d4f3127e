"""Stale learner losses by example id: scores for selection without a scoring forward pass.

Fresh learnability costs a learner forward over the whole super-batch every step (with B = 10·b
that is about 4× the FLOPs of the training step itself). A :class:`LossMemory` instead remembers,
for every example, the learner's loss the last time it was trained on; the training forward
computes those losses anyway, so remembering them is free. Loshchilov & Hutter (2015) rank by
such stored losses too. Examples never trained on hold ``initial`` (``log C``, the loss of an
untrained classifier, is a sensible value), so unseen examples are favoured until seen once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._ids import IdIndex
from .._validation import check_int_range

__all__ = ["LossMemory"]


class LossMemory:
    """The learner's most recent loss on each example, keyed by example id.

    Parameters
    ----------
    ids : int or Tensor
        The examples: an int ``N`` means ids ``0 … N−1``; a 1-D integer tensor gives the ids
        themselves (any unique integers).
    initial : float
        Loss assumed for examples not yet seen (e.g. ``math.log(num_classes)``); must be finite.
    device : torch.device or str, default "cpu"
        Where the table lives (the learner's device; lookups and updates make no host round-trip
        unless ``check_values=True``).
    """

    def __init__(self, ids: int | Tensor, *, initial: float, device="cpu") -> None:
        if not isinstance(ids, Tensor):
            ids = torch.arange(check_int_range(ids, "ids (the number of examples)", low=1))
        if not torch.isfinite(torch.tensor(float(initial))):
            raise ValueError(f"initial must be a finite loss, got {initial}")
        self.index = IdIndex(ids).to(device)
        if len(self.index) < 1:
            raise ValueError("a LossMemory needs at least one example id")
        # one spare row at the end takes the writes of unknown ids, so they never touch a known one
        self._losses = torch.full((len(self.index) + 1,), float(initial), device=device)
        self._seen = torch.zeros(len(self.index) + 1, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def losses(self) -> Tensor:
        """The remembered loss of each row (a view; row ``i`` belongs to ``index.ids[i]``)."""
        return self._losses[:-1]

    @property
    def seen(self) -> Tensor:
        """Whether each row was updated at least once (a view)."""
        return self._seen[:-1]

    @property
    def device(self) -> torch.device:
        return self._losses.device

    def to(self, device: torch.device | str) -> LossMemory:
        """Move the memory to ``device`` in place; returns ``self``."""
        self.index = self.index.to(device)
        self._losses, self._seen = self._losses.to(device), self._seen.to(device)
        return self

    def _locate(self, ids: Tensor, check_values: bool) -> tuple[Tensor, Tensor]:
        ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        return self.index.locate(ids, check_values=check_values)

    def lookup(self, ids: Tensor, *, check_values: bool = False) -> Tensor:
        """The remembered losses of ``ids`` (``initial`` for examples never updated).

        No host sync unless ``check_values``: an unknown id gets NaN and is counted, and
        :meth:`check_missing` (or :meth:`state_dict`) raises for it.
        """
        rows, known = self._locate(ids, check_values)
        return self.losses.index_select(0, rows).masked_fill(~known, float("nan"))

    def update(self, ids: Tensor, losses: Tensor, *, check_values: bool = False) -> None:
        """Remember ``losses`` (detached) for ``ids``; a repeated id keeps one of its losses.

        Shapes are always checked. With ``check_values`` unknown ids and NaN/inf losses raise
        ``ValueError`` (host syncs); a non-finite loss would otherwise poison later selections.
        Without it an unknown id's loss is dropped and counted (see :meth:`check_missing`).
        """
        rows, known = self._locate(ids, check_values)
        losses = losses.detach()
        if losses.shape != rows.shape:
            raise ValueError(
                f"losses must have one value per id; got shapes {tuple(losses.shape)} and "
                f"{tuple(rows.shape)}"
            )
        if check_values and not bool(torch.isfinite(losses.sum())):
            raise ValueError("losses has non-finite values (NaN or inf); the learner diverged?")
        rows = torch.where(known, rows, len(self))  # unknown ids write the spare row
        self._losses.index_copy_(0, rows, losses.to(self._losses.dtype))
        self._seen.index_fill_(0, rows, True)

    def check_missing(self) -> None:
        """Raise ``ValueError`` if a lookup or update since the last check met an unknown id."""
        self.index.check_missing()

    def seen_fraction(self) -> Tensor:
        """Share of examples updated at least once (0-d tensor, no host sync)."""
        return self.seen.float().mean()

    def state_dict(self) -> dict[str, Any]:
        """Losses and seen mask; raises first if unknown ids were met (see :meth:`check_missing`)."""
        self.check_missing()
        return {"losses": self.losses.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        losses, seen = state["losses"], state["seen"]
        if losses.shape != self.losses.shape or seen.shape != self.seen.shape:
            raise ValueError(
                f"state holds {tuple(losses.shape)} losses, this memory has {len(self)} examples"
            )
        self._losses[:-1] = losses.to(self.device)
        self._seen[:-1] = seen.to(self.device)
