r"""InfoBatch-style epoch pruning (Qin et al., ICLR 2024) with every epoch's length known up front.

A pruned epoch takes the well-learned set ``W``, the ``M = round(m·N)`` examples with the lowest
last loss, drops ``D = round(r·M)`` of them uniformly at random and weights the kept members of
``W`` by ``M / (M − D)``, the inverse of their inclusion probability. For a fixed loss table and
any per-example values ``v`` (losses, gradients) the weighted epoch sum is then unbiased:

.. math:: \mathbb{E}\Big[\sum_{i\ \mathrm{kept}} w_i v_i\Big]
          = \sum_{i \notin W} v_i + \sum_{i \in W} \frac{M - D}{M} \cdot \frac{M}{M - D}\, v_i
          = \sum_i v_i .

Epoch 0 (no losses known yet) and every epoch ``e ≥ P = ⌊δ·E⌋`` serve all ``N`` examples with
weight 1. ``M`` and ``D`` are counts fixed at construction (InfoBatch drops a share of the examples
below the mean loss, a number that depends on the data), so every epoch's length is known before
training and a step-based LR schedule gets its exact total (:meth:`InfoBatchSampler.num_batches`,
:meth:`InfoBatchSource.total_steps`). Unlike the published code nothing here patches the
DataLoader or touches the global RNG, an epoch is planned once (not on every ``iter()``), and the
weights go back to exactly 1 in the full epochs whatever ``δ·E`` is.

Two adapters share one core: :class:`InfoBatchSampler`, a ``torch.utils.data.Sampler``, and
:class:`InfoBatchSource`, the training engine's :class:`~siftdata.training.sources.WeightedSource`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from .._ids import is_integer_tensor
from .._seeding import derive_seed
from .._validation import canonical_device, check_fraction, check_int_range, check_seed
from ..scoring.loss_memory import LossMemory
from .infobatch_plan import full_stats, plan_pruned

__all__ = ["InfoBatchSampler", "InfoBatchSource"]

_EPS = 1e-9  # float slack: 0.29 · 100 must floor to 29 and 0.35 · 10 round to 4


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + _EPS)


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _check_indices(indices: Tensor, name: str) -> Tensor:
    if not isinstance(indices, Tensor) or indices.dim() != 1 or not is_integer_tensor(indices):
        got = (
            f"{indices.dtype} of shape {tuple(indices.shape)}"
            if isinstance(indices, Tensor)
            else type(indices).__name__
        )
        raise ValueError(f"{name} must be a 1-D integer tensor, got {got}")
    return indices


class _EpochPruning:
    """What both adapters share: the fixed schedule, the loss table and the current epoch's plan.

    A plan (order and weights) is a function of ``(seed, epoch, losses at the epoch's start)``
    only: it is drawn from a fresh CPU generator seeded with ``derive_seed(seed,
    "infobatch-epoch-{e}")`` and one host copy of the loss table. An adapter serves the plan's
    order (``_refresh`` caches it in the form it serves); ``cursor`` counts what it handed out.
    """

    def __init__(
        self,
        num_examples: int,
        *,
        epochs: int,
        prune_ratio: float = 0.5,
        delta: float = 0.875,
        low_share: float = 0.5,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.n = check_int_range(num_examples, "num_examples", low=1)
        self.epochs = check_int_range(epochs, "epochs", low=1)
        self.prune_ratio = check_fraction(prune_ratio, "prune_ratio", low_open=True, high_open=True)
        self.delta = check_fraction(delta, "delta", low_open=True)
        self.low_share = check_fraction(low_share, "low_share", low_open=True, high_open=True)
        self.seed, self.device = check_seed(seed), canonical_device(device)
        self.num_low = min(_round_half_up(self.low_share * self.n), self.n)
        # D < M: every member of W keeps a positive inclusion probability, so its weight is finite
        dropped = min(_round_half_up(self.prune_ratio * self.num_low), self.num_low - 1)
        self.num_dropped = max(dropped, 0)
        self.prune_until = math.floor(self.delta * self.epochs + _EPS)
        self.min_length = min(self.epoch_lengths())  # epochs beyond E are full
        self.memory = LossMemory(self.n, initial=0.0, device=self.device)
        self._token = 0  # changes with every new plan: a sampler iterator of an old plan stops
        self._serving = 0  # live iterators (the Sampler adapter)
        self._start(0)

    def _refresh(self) -> None:
        raise NotImplementedError

    def epoch_length(self, epoch: int) -> int:
        """``N − D`` for a pruned epoch ``1 ≤ e < ⌊δ·E⌋``, ``N`` otherwise (also beyond ``E``)."""
        check_int_range(epoch, "epoch", low=0)
        pruned = 1 <= epoch < self.prune_until and self.num_dropped > 0
        return self.n - self.num_dropped if pruned else self.n

    def epoch_lengths(self) -> list[int]:
        """The lengths of epochs ``0 … E−1``, known before training."""
        return [self.epoch_length(e) for e in range(self.epochs)]

    def passes_saved(self) -> float:
        """``1 − Σ_e L_e / (E·N)``: the share of example visits the ``E`` epochs skip."""
        return 1.0 - sum(self.epoch_lengths()) / (self.epochs * self.n)

    def _start(self, epoch: int) -> None:
        """Make ``epoch`` current with a fresh plan from the losses now; the cursor goes to 0."""
        check_int_range(epoch, "epoch", low=0)
        self.memory.check_missing()  # losses fed back for unknown indices since the last epoch
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, f"infobatch-epoch-{epoch}")
        )
        if self.epoch_length(epoch) < self.n:
            mem = self.memory
            table = mem.losses.masked_fill(~mem.seen, math.inf).cpu()  # the epoch's one host copy
            order, weights, stats = plan_pruned(
                table, num_low=self.num_low, num_dropped=self.num_dropped, generator=generator
            )
        else:
            order, weights = torch.randperm(self.n, generator=generator), torch.ones(self.n)
            stats = full_stats()
        self._install(epoch, 0, order, weights, stats)

    def _install(self, epoch, cursor, order, weights, stats) -> None:
        self.epoch, self.cursor, self.length = epoch, cursor, int(order.numel())
        self._order_cpu, self._weights_cpu = order, weights
        self._weights = _to_device(weights, self.device)
        self._stats = {**stats, "epoch": epoch, "length": self.length}
        self._token += 1
        self._refresh()

    def epoch_stats(self) -> dict[str, float]:
        """The current plan: ``epoch``, ``length``, ``num_dropped``, ``kept_low_weight``, and for a
        pruned epoch ``mean_loss``, ``low_threshold``, ``unseen_in_low`` (examples of ``W`` with no
        finite loss) and ``dropped_at_or_above_mean``; NaN where they do not apply."""
        return dict(self._stats)

    def weights(self, indices: Tensor) -> Tensor:
        """The current epoch's loss weight of each index, on the table's device (no host sync).

        ``M / (M − D)`` for a kept well-learned example, 0 for a dropped one, 1 for all others;
        exactly 1 everywhere in a full epoch.
        """
        _check_indices(indices, "indices")
        return self._weights.index_select(0, indices.to(self.device))

    def _update(self, indices: Tensor, losses: Tensor, check_values: bool) -> None:
        _check_indices(indices, "indices")
        if not isinstance(losses, Tensor) or losses.shape != indices.shape:
            shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
            raise ValueError(
                f"losses must hold one value per index: got {shape} for indices of shape "
                f"{tuple(indices.shape)}"
            )
        self.memory.update(indices, losses, check_values=check_values)

    def state_dict(self) -> dict[str, Any]:
        """Epoch, cursor, the epoch's plan (order, weights), the loss table and seen mask."""
        return {
            "num_examples": self.n,
            "seed": self.seed,
            "epoch": self.epoch,
            "cursor": self.cursor,
            "order": self._order_cpu.clone(),
            "weights": self._weights_cpu.clone(),
            "memory": self.memory.state_dict(),
            "stats": dict(self._stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; ``ValueError`` if it is over another ``N`` or plan."""
        if int(state["num_examples"]) != self.n:
            raise ValueError(
                f"the saved state is over {state['num_examples']} examples, this one has {self.n}"
            )
        if state.get("seed", self.seed) != self.seed:  # states saved before the seed was kept pass
            raise ValueError(
                f"the saved state was planned with seed {state['seed']}, this one has seed "
                f"{self.seed}: its epochs would continue with other drop sets; build it with "
                f"seed={state['seed']}"
            )
        epoch, cursor = int(state["epoch"]), int(state["cursor"])
        length = self.epoch_length(epoch)
        order, weights = state["order"], state["weights"]
        if tuple(order.shape) != (length,) or tuple(weights.shape) != (self.n,):
            raise ValueError(
                f"the saved plan of epoch {epoch} has {order.numel()} positions and "
                f"{weights.numel()} weights; these settings need {length} and {self.n} "
                "(were prune_ratio, delta, low_share or epochs changed?)"
            )
        if not 0 <= cursor <= length:
            raise ValueError(f"the saved cursor must be in [0, {length}], got {cursor}")
        self.memory.load_state_dict(state["memory"])  # checks its shapes before changing anything
        order, weights = order.to("cpu", torch.int64).clone(), weights.to("cpu", torch.float32)
        self._install(epoch, cursor, order, weights.clone(), state["stats"])


class InfoBatchSampler(_EpochPruning, Sampler[int]):
    """Epoch pruning as a ``torch.utils.data.Sampler``: one ``iter()`` serves one epoch.

    An ``iter()`` serves the current epoch from its cursor; when that epoch has been served
    completely (and :meth:`set_epoch` was not called since), it first plans and starts the next
    epoch. So ``BatchSampler`` and ``DataLoader`` (which call ``iter()`` once per epoch) get one
    plan per epoch, and an ``iter()`` in the middle of an epoch (after a resume) continues it.
    ``len()`` is the full length of the epoch the next ``iter()`` serves.

    The loop feeds the training losses back with :meth:`update` and multiplies them by
    :meth:`weights` (the dataset has to return each example's index for that).

    Parameters
    ----------
    num_examples : int
        ``N``, the dataset size (indices ``0 … N−1``).
    epochs : int
        ``E``, the planned number of epochs; epochs beyond it are full.
    prune_ratio : float, default 0.5
        ``r ∈ (0, 1)``: the share of the well-learned set dropped in a pruned epoch
        (``D = round(r·M)``, at most ``M − 1``; InfoBatch's default).
    delta : float, default 0.875
        ``δ ∈ (0, 1]``: epochs ``1 ≤ e < ⌊δ·E⌋`` are pruned, the last ones anneal on the full data
        (InfoBatch's default).
    low_share : float, default 0.5
        ``m ∈ (0, 1)``: the well-learned set is the ``M = round(m·N)`` lowest last losses (rounded
        half up). InfoBatch uses the examples below the mean loss instead, a data-dependent count;
        for the usual right-skewed losses (median below the mean) the lower half lies below the
        mean, and ``epoch_stats()["dropped_at_or_above_mean"]`` reports when it does not.
        Unseen examples rank last (loss ``+inf``): they enter ``W`` only if fewer than ``M``
        examples have a loss.
    seed : int, default 0
        Epoch ``e`` is planned with a CPU generator seeded ``derive_seed(seed,
        "infobatch-epoch-{e}")``: a plan depends on ``(seed, e, losses at the epoch's start)``.
    device : torch.device or str, default "cpu"
        Where the loss table and the weights live.

    Notes
    -----
    With a prefetching DataLoader (``num_workers > 0``) the cursor in :meth:`state_dict` counts the
    indices handed to the loader, not those trained on: a resume then skips the prefetched ones.
    Save between epochs, or with ``num_workers=0``, for an exact resume.
    """

    def _refresh(self) -> None:
        self._order: list[int] = self._order_cpu.tolist()

    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch`` current: plan it from the losses now and serve it from its start.

        Warns (``RuntimeWarning``) while an iterator is part-way through the current epoch: the
        rest of that epoch is dropped, which is what a loop that cuts epochs short means to do,
        and a mistake otherwise (call it between epochs).
        """
        if self._serving and 0 < self.cursor < self.length:
            warnings.warn(
                f"set_epoch({epoch}) was called while epoch {self.epoch} is being iterated "
                f"({self.cursor} of {self.length} indices served): the rest of epoch "
                f"{self.epoch} is dropped; call it before iterating an epoch, as with "
                "DistributedSampler, unless epochs are cut short on purpose",
                RuntimeWarning,
                stacklevel=2,
            )
        self._start(epoch)

    def __iter__(self) -> Iterator[int]:
        if self.cursor >= self.length:
            self._start(self.epoch + 1)
        return self._serve(self._token)

    def _serve(self, token: int) -> Iterator[int]:
        order = self._order
        self._serving += 1
        try:
            while self._token == token and self.cursor < self.length:
                self.cursor += 1
                yield order[self.cursor - 1]
        finally:  # also when an unfinished iterator is closed or collected
            self._serving -= 1

    def __len__(self) -> int:
        return self.epoch_length(self.epoch + 1) if self.cursor >= self.length else self.length

    def num_batches(self, batch_size: int, *, drop_last: bool = False) -> int:
        """``Σ_e ⌈L_e / b⌉`` (``⌊L_e / b⌋`` with ``drop_last``) over the ``E`` epochs: the
        ``total_steps`` of a per-batch LR schedule."""
        check_int_range(batch_size, "batch_size", low=1)
        if drop_last:
            return sum(length // batch_size for length in self.epoch_lengths())
        return sum(-(-length // batch_size) for length in self.epoch_lengths())

    def update(self, indices: Tensor, losses: Tensor, *, check_values: bool = False) -> None:
        """Remember the (detached) training ``losses`` of ``indices`` for the next epoch's plan.

        Shapes are always checked; no host sync unless ``check_values=True`` (then unknown
        indices and NaN/inf losses raise ``ValueError``).
        """
        self._update(indices, losses, check_values)


class InfoBatchSource(_EpochPruning):
    """Epoch pruning as the training engine's batch source (a ``WeightedSource``).

    :meth:`next` hands out the current epoch's order ``size`` positions at a time, on the
    device; when fewer than ``size`` remain the ragged tail is dropped and the next epoch is
    planned and started. Each epoch's order is copied to the device once, at its start (the only
    host sync outside :meth:`state_dict`); :meth:`total_steps` is the number of calls that covers
    exactly ``E`` epochs.

    Parameters
    ----------
    num_examples, epochs, prune_ratio, delta, low_share, seed, device
        As for :class:`InfoBatchSampler`.
    """

    def _refresh(self) -> None:
        self._order = _to_device(self._order_cpu, self.device)

    def _check_size(self, size: int) -> int:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= self.min_length:
            raise ValueError(
                f"size must be an int in [1, {self.min_length}] (the shortest epoch), got {size!r}"
            )
        return size

    def next(self, size: int) -> Tensor:
        """The next ``size`` positions of the current epoch (a new epoch when fewer remain)."""
        self._check_size(size)
        if self.cursor + size > self.length:
            self._start(self.epoch + 1)
        positions = self._order[self.cursor : self.cursor + size]
        self.cursor += size
        return positions

    def observe(self, positions: Tensor, losses: Tensor, *, check_values: bool = False) -> None:
        """Remember the (detached) training ``losses`` of ``positions`` (shapes always checked;
        no host sync unless ``check_values=True``, which rejects unknown positions and NaN/inf)."""
        self._update(positions, losses, check_values)

    def steps_per_epoch(self, size: int) -> list[int]:
        """``⌊L_e / size⌋`` for epochs ``0 … E−1``: the calls of ``next(size)`` each one gets."""
        self._check_size(size)
        return [length // size for length in self.epoch_lengths()]

    def total_steps(self, size: int) -> int:
        """``Σ_e ⌊L_e / size⌋``: the number of ``next(size)`` calls that covers ``E`` epochs."""
        return sum(self.steps_per_epoch(size))
