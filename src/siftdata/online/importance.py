r"""Importance sampling (Katharopoulos & Fleuret, 2018): draw ∝ a gradient-norm bound, weight by
``1/(B·p)``, and switch it on only while the variance it removes pays for its scoring forward.

:class:`ImportanceSampler` is the selector: ``b`` draws *with replacement* from the super-batch of
``B`` with ``p_i ∝ g_i + c`` (``g`` the per-example bound of
:class:`~siftdata.scoring.scorers.GradNormBound`, ``c`` an optional additive smoothing), each weighted by
``1/(B·p_i)`` so the weighted mean loss is unbiased for the super-batch mean.

:class:`VarianceReductionGate` is the scoring policy: it keeps an exponential moving average of
τ (:func:`~siftdata.core.unbiased.variance_reduction_tau`) and scores only while ``τ > τ_th``. An
importance step costs a forward over ``B`` plus a training step over ``b`` (≈ ``B + 3b`` forward
passes' worth) against ``3b`` for a uniform one, so it pays when the variance shrinks by more than
that: the paper's ``τ_th = (B + 3b)/(3b)`` (:func:`paper_tau_threshold`). While off, the step trains
on ``b`` uniform examples and skips the scoring forward; τ is then estimated from the bounds of the
trained batch, which its training forward gives for free.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import Tensor

from .._validation import check_int_range, check_sampling_weights, check_vector
from ..core.sampling import sample_with_replacement, sanitise_scores
from ..core.unbiased import importance_weights, variance_reduction_tau
from .base import GeneratorOwner, Selection

__all__ = ["ImportanceSampler", "VarianceReductionGate", "paper_tau_threshold"]


def paper_tau_threshold(super_batch: float, batch: float) -> float:
    """``(B + 3b) / (3b)``: the τ above which an importance step pays for its scoring forward.

    Only the ratio ``B / b`` matters, so ``paper_tau_threshold(B / b, 1)`` is the same value.
    """
    if not 0 < batch <= super_batch:
        raise ValueError(f"need 0 < b <= B, got b={batch}, B={super_batch}")
    return (super_batch + 3 * batch) / (3 * batch)


class ImportanceSampler(GeneratorOwner):
    """Draw ``k`` of ``B`` with replacement, ``p ∝ scores + smoothing``; weights ``1/(B·p)``.

    Parameters
    ----------
    smoothing:
        ``c ≥ 0`` added to every score before normalising: keeps every example drawable and caps
        the weights at ``(Σ g + B·c)/(B·c)``.
    seed, device:
        The selector's own generator.
    check_values:
        Raise on NaN/inf, negative or all-zero scores (host syncs). Unchecked, a super-batch whose
        scores sum to zero is drawn uniformly.

    The stats hold τ of this super-batch (``tau_batch``) and the largest weight.
    """

    def __init__(
        self,
        *,
        smoothing: float = 0.0,
        seed: int = 0,
        device="cpu",
        check_values: bool = False,
    ) -> None:
        super().__init__(seed=seed, device=device)
        if not smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.smoothing = float(smoothing)
        self.check_values = check_values

    def probabilities(self, scores: Tensor) -> Tensor:
        """The sampling weights ``max(scores, 0) + c`` (all ones where they sum to zero; no host
        sync): a negative score, such as a sanitised NaN, is never drawn."""
        weights = scores.clamp_min(0.0)
        weights = weights + self.smoothing if self.smoothing else weights
        return torch.where(weights.sum() > 0, weights, torch.ones_like(weights))

    def select(self, scores: Tensor, k: int) -> Selection:
        check_vector(scores, "scores")
        check_int_range(k, "k", low=1)  # with replacement, k may exceed B
        if self.check_values:
            check_sampling_weights(scores, "importance scores")
        weights = self.probabilities(sanitise_scores(scores)[0])
        weights = weights.masked_fill(
            ~torch.isfinite(scores), 0.0
        )  # smoothing must not revive them
        weights = torch.where(weights.sum() > 0, weights, torch.ones_like(weights))
        indices = sample_with_replacement(weights, k, generator=self.generator)
        loss_weights = importance_weights(weights, indices)
        stats = {"tau_batch": variance_reduction_tau(weights), "weight_max": loss_weights.max()}
        return Selection(indices=indices, weights=loss_weights, stats=stats)

    def __repr__(self) -> str:
        return f"ImportanceSampler(smoothing={self.smoothing}, seed={self.seed})"


class VarianceReductionGate:
    """Score (importance-sample) only while the smoothed τ exceeds ``threshold``.

    Parameters
    ----------
    threshold:
        ``τ_th > 1`` (τ ≥ 1 always, so ``τ_th ≤ 1`` would never switch off); see
        :func:`paper_tau_threshold`.
    momentum:
        ``a`` of the moving average ``τ ← a·τ + (1 − a)·τ_step``, in ``[0, 1)``.
    lag:
        The decision at step ``t`` uses τ as it was after step ``t − lag`` (``lag ≥ 1``). τ lives
        on the device; each step's value is copied to the host without blocking, and reading the
        one from ``lag`` steps back waits only for work queued that long ago, so with ``lag ≥ 2``
        the device is never left idle. Decisions depend only on the step, so a resumed run
        makes the same ones.

    Before any estimate τ reads 0 (off): the first steps train uniformly and estimate τ from their
    own batches. The average is bias-corrected like Adam's (divided by ``1 − aⁿ`` after ``n``
    steps), so early values are not pulled towards 0.
    The loop hands the gate each step's per-example scores through :meth:`observe`: the super-batch
    scores while on, the trained batch's bounds (from its training forward) while off.
    """

    observes = True

    def __init__(self, *, threshold: float, momentum: float = 0.9, lag: int = 2) -> None:
        if not threshold > 1:
            raise ValueError(
                f"threshold (τ_th) must be > 1: τ is never below 1, so τ_th = {threshold} would "
                "keep importance sampling on for good; use (B + 3b)/(3b) (paper_tau_threshold)"
            )
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 1:
            raise ValueError(f"lag must be an int >= 1, got {lag!r}")
        self.threshold, self.momentum, self.lag = float(threshold), float(momentum), lag
        self.average: Tensor | None = None  # the raw moving average, on the device
        self.tau: Tensor | None = None  # bias-corrected, what the decisions read
        self.observed = 0
        self.host_tau = 0.0  # the value decisions read
        self.pending: deque[tuple[Tensor, Any]] = deque()  # host copies on their way
        self.on = False

    def should_score(self, step: int) -> bool:
        while len(self.pending) >= self.lag:
            value, ready = self.pending.popleft()
            if ready is not None:
                ready.synchronize()  # work queued `lag` steps ago: normally long done
            self.host_tau = float(value.numpy())  # a host tensor: no device sync
        self.on = self.host_tau > self.threshold
        return self.on

    def observe(self, scores: Tensor) -> None:
        """Fold τ of this step's per-example ``scores`` into the average (no host sync)."""
        tau = variance_reduction_tau(scores.detach().float())
        if self.average is None:
            self.average = torch.zeros_like(tau)
        self.average = torch.lerp(tau, self.average.to(tau.device), self.momentum)
        self.observed += 1
        self.tau = self.average / (1 - self.momentum**self.observed)
        self.pending.append(_to_host(self.tau))

    def stats(self) -> dict[str, Tensor]:
        """τ's moving average and whether this step importance-sampled (0-d device tensors)."""
        if self.tau is None:
            return {}
        return {"tau": self.tau, "importance_on": torch.full_like(self.tau, float(self.on))}

    def state_dict(self) -> dict[str, Any]:
        pending = [float(_wait(v, e).numpy()) for v, e in self.pending]
        return {
            "average": self.average,
            "tau": self.tau,
            "observed": self.observed,
            "host_tau": self.host_tau,
            "pending": pending,
            "on": self.on,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average, self.tau = state["average"], state["tau"]
        self.observed, self.host_tau = int(state["observed"]), float(state["host_tau"])
        self.on = bool(state["on"])
        self.pending = deque((torch.tensor(v), None) for v in state["pending"])

    def __repr__(self) -> str:
        return (
            f"VarianceReductionGate(threshold={self.threshold:.6g}, momentum={self.momentum}, "
            f"lag={self.lag})"
        )


def _to_host(value: Tensor) -> tuple[Tensor, Any]:
    """A non-blocking copy of a 0-d tensor into host memory, and an event marking its arrival."""
    if value.device.type != "cuda":
        return value.detach().to("cpu", copy=True), None
    host = torch.empty((), dtype=value.dtype, pin_memory=True)
    host.copy_(value, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event


def _wait(value: Tensor, event: Any) -> Tensor:
    if event is not None:
        event.synchronize()
    return value
