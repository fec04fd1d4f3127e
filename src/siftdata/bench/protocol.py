"""The scenario protocol: one way for every budget-sweep benchmark to check, prepare, run and
summarise.

A scenario says what its options are, checks them, prepares its data and reference, trains one
(method, seed, budget) and adds its own summary sections; :func:`run_scenario` does the rest the
same way for all of them: ``config.json``, every run of the sweep with its records rewritten to
``metrics.jsonl`` after each, the target-based summary at the largest budget, the budget sweep's
multipliers, and ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from ..training.recorder import write_records
from .budget import summarize_budget_sweep
from .summary import summarize

__all__ = ["Scenario", "run_scenario", "run_all", "sweep_summary", "sweep_runs"]


class Scenario(Protocol):
    """What a budget-sweep benchmark provides to :func:`run_scenario`."""

    name: str
    """The scenario's CLI name, written to ``config.json`` and ``summary.json``."""

    def config(self) -> dict:
        """Every option group as plain data (``config.json``'s content besides the name)."""

    def check(self) -> None:
        """Raise ``ValueError`` for options that do not fit together, before any data loads."""

    def prepare(self, out: Path) -> None:
        """Load the data and build (or load from ``out``) the reference the methods need."""

    def run_one(self, method: str, seed: int, budget: float) -> list[dict]:
        """Train ``method`` with ``seed`` at ``budget`` × ``--steps``; return its records."""

    def extras(self, records: list[dict]) -> dict:
        """The scenario's own summary sections, from every run's records."""


def sweep_runs(sweep, train_cfg) -> list[tuple[int, str, float]]:
    """Every (seed, method, budget) of ``sweep``, seeds outermost, in the order they run."""
    return [
        (train_cfg.seed + s, m, b)
        for s in range(sweep.seeds)
        for m in sweep.methods
        for b in sweep.runs(m)
    ]


def run_all(
    out: Path,
    sweep,
    train_cfg,
    run_one: Callable[[str, int, float], list[dict]],
) -> list[dict]:
    """Every (seed, method, budget) of ``sweep`` through ``run_one(name, seed, budget)``; the
    records so far are rewritten to ``out/metrics.jsonl`` after each run."""
    records: list[dict] = []
    runs = sweep_runs(sweep, train_cfg)
    for seed, name, budget in tqdm(runs, desc="runs", disable=not train_cfg.progress):
        records += run_one(name, seed, budget)
        write_records(out / "metrics.jsonl", records)
    return records


def sweep_summary(records: list[dict], sweep) -> dict:
    """The target-based summary at the largest common budget, plus the sweep when there is one."""
    top = max(sweep.budgets)
    summary = summarize([r for r in records if r["budget"] == top], methods=list(sweep.methods))
    if len(sweep.budgets) + len(sweep.uniform_budgets) > 1:
        summary["budget_sweep"] = summarize_budget_sweep(records, methods=list(sweep.methods))
    return summary


def run_scenario(out: Path, scenario: Scenario, sweep, train_cfg) -> dict:
    """Check, write ``config.json``, prepare, run the sweep and write ``summary.json`` into
    ``out``; return the summary."""
    scenario.check()
    config = scenario.config()
    (out / "config.json").write_text(json.dumps({"name": scenario.name, **config}, indent=2))
    scenario.prepare(out)
    records = run_all(out, sweep, train_cfg, scenario.run_one)
    summary = sweep_summary(records, sweep)
    summary.update(scenario=scenario.name, config=config)
    summary.update(scenario.extras(records))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
