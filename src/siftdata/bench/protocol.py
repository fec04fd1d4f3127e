"""The scenario protocol: one way for every budget-sweep benchmark to check, prepare, run and
summarise.

An interrupted sweep resumes: rerun in the same folder, the runs it finished are kept and
skipped and the one it was in continues from its checkpoint.

A scenario says what its options are, checks them, prepares its data and reference, trains one
(method, seed, budget) and adds its own summary sections; :func:`run_scenario` does the rest the
same way for all of them: ``config.json``, every run of the sweep with its records rewritten to
``metrics.jsonl`` after each, the target-based summary at the largest budget, the budget sweep's
multipliers, and ``summary.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from .._files import atomic_write_text, fs_errors
from ..training.recorder import write_records
from ..training.run_state import identity_file
from .budget import summarize_budget_sweep
from .summary import summarize

__all__ = ["Scenario", "finished_runs", "run_scenario", "run_all", "sweep_summary", "sweep_runs"]


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

    def run_one(self, method: str, seed: int, budget: float, *, checkpoint: Path) -> list[dict]:
        """Train ``method`` with ``seed`` at ``budget`` × ``--steps``, resuming from (and saving
        to) ``checkpoint``; return its records."""

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


RunKey = tuple[int, str, float]


def _key(record: dict) -> RunKey:
    return (record["seed"], record["method"], record["budget"])


def finished_runs(path: Path) -> dict[RunKey, list[dict]]:
    """The records in ``path`` (an earlier ``metrics.jsonl``) grouped by (seed, method, budget).

    The file is rewritten only after a run ends, so every run in it finished. A line that is not
    a JSON record with those keys is refused, naming the file and the line.
    """
    runs: dict[RunKey, list[dict]] = {}
    if not path.exists():
        return runs
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
            key = _key(record)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} line {number} is not a run's record ({err!r}); delete the line (its run "
                "is redone) or use --overwrite"
            ) from err
        runs.setdefault(key, []).append(record)
    return runs


def _say_skipped(done: int, total: int) -> None:
    if done:
        print(
            f"siftdata: {done} of {total} runs finished earlier; kept and skipped", file=sys.stderr
        )


def run_all(
    out: Path, sweep, train_cfg, run_one: Callable[..., list[dict]], *, lead: bool = True
) -> list[dict]:
    """Every (seed, method, budget) of ``sweep`` through ``run_one(name, seed, budget,
    checkpoint=path)``, skipping the runs an earlier, interrupted sweep in ``out`` finished.

    After each run the records so far are rewritten to ``out/metrics.jsonl`` (with, at the end,
    those of earlier runs this sweep no longer asks for: nothing is lost); the run's checkpoint
    under ``out/checkpoints`` lets an interrupted run resume, and is removed once it finished.
    With several ranks every rank runs the sweep (``run_one`` shares each run's work) and only
    the ``lead`` rank writes and reports.
    """
    earlier = finished_runs(out / "metrics.jsonl")
    runs = sweep_runs(sweep, train_cfg)
    if lead:
        _say_skipped(sum(key in earlier for key in runs), len(runs))
    others = [r for key, rs in earlier.items() if key not in set(runs) for r in rs]
    records: list[dict] = []
    for seed, name, budget in tqdm(runs, desc="runs", disable=not (train_cfg.progress and lead)):
        if (seed, name, budget) in earlier:
            records += earlier[(seed, name, budget)]
            continue
        checkpoint = out / "checkpoints" / f"seed{seed}-{name}-budget{budget:g}.pt"
        with fs_errors(checkpoint.parent):
            checkpoint.parent.mkdir(exist_ok=True)
        records += run_one(name, seed, budget, checkpoint=checkpoint)
        if lead:
            write_records(out / "metrics.jsonl", records + others)
            _remove_run_files(checkpoint)
    return records


def _remove_run_files(checkpoint: Path) -> None:
    """A finished run's checkpoint, identity and lock files: it is skipped from now on."""
    lock = checkpoint.with_name(f".{checkpoint.name}.lock")
    for path in (checkpoint, identity_file(checkpoint), lock):
        path.unlink(missing_ok=True)


def sweep_summary(records: list[dict], sweep) -> dict:
    """The target-based summary at the largest common budget, plus the sweep when there is one."""
    top = max(sweep.budgets)
    summary = summarize([r for r in records if r["budget"] == top], methods=list(sweep.methods))
    if len(sweep.budgets) + len(sweep.uniform_budgets) > 1:
        summary["budget_sweep"] = summarize_budget_sweep(records, methods=list(sweep.methods))
    return summary


def run_scenario(out: Path, scenario: Scenario, sweep, train_cfg, *, lead: bool = True) -> dict:
    """Check, write ``config.json``, prepare, run the sweep and write ``summary.json`` into
    ``out``; return the summary. Only the ``lead`` rank writes (a scenario that runs on several
    ranks prepares and runs on all of them)."""
    scenario.check()
    config = scenario.config()
    if lead:
        text = json.dumps({"name": scenario.name, **config}, indent=2)
        atomic_write_text(out / "config.json", text)
    scenario.prepare(out)
    records = run_all(out, sweep, train_cfg, scenario.run_one, lead=lead)
    summary = sweep_summary(records, sweep)
    summary.update(scenario=scenario.name, config=config)
    summary.update(scenario.extras(records))
    if lead:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
