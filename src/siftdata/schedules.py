"""Learning-rate schedules decayed to a run's own budget, with an optional linear warm-up.

A fair comparison gives every method, uniform included, a learning rate decayed to the number of
steps it will run (Kaddour et al., 2023, arXiv 2307.06440): a constant rate flatters selection,
because uniform then memorises label noise late in training. The schedule is a pure function of
the step, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

import torch

from ._config import check_choice

__all__ = ["SCHEDULES", "lr_factor", "set_lr"]

SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(step: int, total: int, *, schedule: str = "constant", warmup_steps: int = 0) -> float:
    r"""The multiplier of the base learning rate for update ``step`` (0-based) of ``total``.

    .. math::
        w(s) = \min(1, (s + 1) / W), \qquad
        d(s) = \begin{cases} 1 & \text{constant} \\
                 \tfrac12 (1 + \cos(\pi p)) & \text{cosine} \\
                 1 - p & \text{linear} \end{cases},
        \quad p = \frac{s - W}{T - W}

    and the factor is ``w(s) · d(s)`` (``d = 1`` during the warm-up). The decay reaches 0 only
    after the last update (``p = 1`` at ``s = T``), so the last update still moves.
    """
    check_choice(schedule, "schedule", SCHEDULES)
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant" or step < warmup_steps:
        return warm
    progress = (step - warmup_steps) / max(total - warmup_steps, 1)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm * (1.0 - progress)


def set_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float) -> None:
    """Set each parameter group's learning rate to its base rate times ``factor`` (host floats)."""
    for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"] = base * factor
