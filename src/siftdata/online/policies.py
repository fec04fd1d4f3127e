"""Scoring policies: decide, per step and on the host, whether to score the super-batch at all.

When a policy says no, the step draws only ``b`` examples and trains on them as drawn (uniform),
skipping the scoring forward and the selection. Importance sampling's pay-off switch and a uniform
warm-up are policies. A policy decides from host-side state only (the step number, or values it
reads at points it chooses): it must not sync with the device every step.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .._validation import check_int_range

__all__ = ["ScoringPolicy", "AlwaysScore", "ScoreAfter", "observes", "policy_stats"]


@runtime_checkable
class ScoringPolicy(Protocol):
    """Whether step ``step`` (0-based) scores and selects, or trains on a uniform batch."""

    def should_score(self, step: int) -> bool: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class AlwaysScore:
    """Score every step (the default)."""

    def should_score(self, step: int) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return "AlwaysScore()"


class ScoreAfter:
    """Train uniformly (no scoring cost) for the first ``steps`` steps, then score every step.

    A learner that has seen nothing ranks examples poorly, and its early scoring forwards are the
    least informative ones.
    """

    def __init__(self, steps: int) -> None:
        self.steps = check_int_range(steps, "steps", low=0)

    def should_score(self, step: int) -> bool:
        return step >= self.steps

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"ScoreAfter({self.steps})"


def observes(policy: Any) -> bool:
    """Whether a scoring policy watches per-example scores (importance sampling's τ gate)."""
    return getattr(policy, "observes", False)


def policy_stats(policy: Any) -> dict[str, Any]:
    """A watching policy's stats (τ and the gate), on the device; ``{}`` for the others."""
    return policy.stats() if observes(policy) else {}
