"""Config dataclass fields that carry their help text, so the CLI is derived from the configs.

``steps: int = option(3000, "learner update steps")`` declares the default and the help once; the
command line (:mod:`siftdata.cli._args`) turns every field into an option with that default.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

from ._validation import check_bool, check_int_range

__all__ = ["option", "check_int_field", "check_float_field", "check_choice", "check_bool"]


def option(
    default: Any, help: str, *, choices: tuple[str, ...] | None = None, cli: bool = True
) -> Any:
    """A dataclass field with a default, a help text, optional choices, and whether the CLI shows it."""
    return field(default=default, metadata={"help": help, "choices": choices, "cli": cli})


def check_int_field(value: Any, name: str, *, low: int, high: int | None = None) -> int:
    """An int option (not a bool, not a float such as 2.5) within ``[low, high]``."""
    return check_int_range(value, name, low=low, high=high)


def check_float_field(
    value: Any, name: str, *, low: float, high: float = math.inf, low_open: bool = False
) -> float:
    """A real, finite number in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bracket = "(" if low_open else "["
        upper = "inf)" if math.isinf(high) else f"{high:g}]"
        raise ValueError(f"{name} must be in {bracket}{low:g}, {upper}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value
