"""Benchmark scenarios (shared/BENCHMARKS.md) and their report."""

from .summary import TARGET_RULE, summarize

__all__ = ["TARGET_RULE", "summarize"]
