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

from .._validation import check_int_range

__all__ = ["LossMemory"]


class LossMemory:
    """The learner's most recent loss on each of ``num_examples`` examples (ids ``0 … N−1``).

    Parameters
    ----------
    num_examples : int
        Pool size ``N``; ids are positions ``0 … N−1``.
    initial : float
        Loss assumed for examples not yet seen (e.g. ``math.log(num_classes)``); must be finite.
    device : torch.device or str, default "cpu"
        Where the table lives (the learner's device; lookups and updates make no host round-trip).
    """

    def __init__(self, num_examples: int, *, initial: float, device="cpu") -> None:
        check_int_range(num_examples, "num_examples", low=1)
        if not torch.isfinite(torch.tensor(float(initial))):
            raise ValueError(f"initial must be a finite loss, got {initial}")
        self.losses = torch.full((num_examples,), float(initial), device=device)
        self.seen = torch.zeros(num_examples, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return int(self.losses.shape[0])

    def _ids(self, ids: Tensor, validate: bool) -> Tensor:
        ids = torch.as_tensor(ids).to(self.losses.device)
        if validate:
            if ids.dim() != 1 or ids.is_floating_point():
                raise ValueError(
                    f"ids must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}"
                )
            if ids.numel() and bool((ids.min() < 0) | (ids.max() >= len(self))):
                raise ValueError(f"ids must be in [0, {len(self)}) (the pool size)")
        return ids

    def lookup(self, ids: Tensor, *, validate: bool = True) -> Tensor:
        """The remembered losses of ``ids`` (``initial`` for examples never updated)."""
        return self.losses.index_select(0, self._ids(ids, validate))

    def update(self, ids: Tensor, losses: Tensor, *, validate: bool = True) -> None:
        """Remember ``losses`` (detached) for ``ids``; a repeated id keeps one of its losses.

        Raises ``ValueError`` (with ``validate``) on a shape mismatch or a NaN/inf loss, which would
        otherwise poison every later selection.
        """
        ids = self._ids(ids, validate)
        losses = losses.detach()
        if validate:
            if losses.shape != ids.shape:
                raise ValueError(
                    f"losses must have one value per id; got shapes {tuple(losses.shape)} and {tuple(ids.shape)}"
                )
            if not bool(torch.isfinite(losses.sum())):
                raise ValueError("losses has non-finite values (NaN or inf); the learner diverged?")
        self.losses.index_copy_(0, ids, losses.to(self.losses.dtype))
        self.seen.index_fill_(0, ids, True)

    def seen_fraction(self) -> Tensor:
        """Share of examples updated at least once (0-d tensor, no host sync)."""
        return self.seen.float().mean()

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        losses, seen = state["losses"], state["seen"]
        if losses.shape != self.losses.shape or seen.shape != self.seen.shape:
            raise ValueError(
                f"state holds {tuple(losses.shape)} losses, this memory has {len(self)} examples"
            )
        self.losses = losses.to(self.losses.device).clone()
        self.seen = seen.to(self.seen.device).clone()
