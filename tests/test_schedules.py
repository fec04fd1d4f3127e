"""Learning-rate schedules: exact values, warm-up, monotone decay to the budget, errors."""

import math

import pytest

from siftdata.schedules import lr_factor


def test_constant_is_one_after_warmup():
    assert [lr_factor(s, 10) for s in range(10)] == [1.0] * 10
    assert [lr_factor(s, 10, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_is_monotone_positive_and_reaches_zero_after_the_last_step(schedule):
    factors = [lr_factor(s, 100, schedule=schedule) for s in range(101)]
    assert factors[0] == 1.0 and factors[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))
    assert factors[99] > 0  # the last update still moves


def test_exact_values_with_warmup():
    # total 12, warm-up 2: progress p = (s - 2) / 10
    assert lr_factor(7, 12, schedule="cosine", warmup_steps=2) == pytest.approx(0.5)
    assert lr_factor(4, 12, schedule="cosine", warmup_steps=2) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.2))
    )
    assert lr_factor(7, 12, schedule="linear", warmup_steps=2) == pytest.approx(0.5)
    assert lr_factor(0, 12, schedule="linear", warmup_steps=2) == 0.5  # warming up


def test_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine, linear"):
        lr_factor(0, 10, schedule="step")
