"""Benchmark scenarios (docs/benchmarks.md), their statistics, the budget sweep and the report."""

from .budget import compute_multiplier, summarize_budget_sweep
from .summary import TARGET_RULE, summarize

__all__ = ["TARGET_RULE", "summarize", "compute_multiplier", "summarize_budget_sweep"]
