"""Honest statistics over per-evaluation records: targets, costs to target, speedups.

The rules of docs/benchmarks.md (the team protocol, BENCHMARKS.md).

Input: one record (a dict) per evaluation of one run, with at least ``method``, ``seed``, ``step``,
``test_acc``, ``flops``, ``flops_end_to_end``, ``seconds``, ``seconds_by_phase`` and
``mislabeled_selected``; ``budget`` (the fraction of the base step budget) defaults to 1.0. A run is
``(method, seed, budget)``; the step-0 record is the untrained model. :func:`summarize` compares the
runs at the largest budget that uniform and every summarized method have (:func:`common_budget`).

Rules
-----
- Moving average of a run with accuracies ``a_0 .. a_{n-1}``: ``w = min(3, n)`` and
  ``ma_i = (a_{i-w+1} + ... + a_i) / w`` for ``i >= w - 1`` (the window ending at evaluation ``i``),
  computed by the one function :func:`moving_averages` for targets and for reaching them.
- Target of seed ``s``: ``T_s = max_i ma_i`` of uniform's run; levels ``f · T_s`` for
  ``f`` in :data:`TARGET_FRACTIONS` (1.0, 0.98, 0.95).
- A run reaches level ``L`` at the first evaluation with ``ma_i >= L - 1e-9 · |L|`` (the tolerance
  makes uniform always reach its own target, whatever the rounding); the costs charged are those
  of that evaluation: ``step``, ``flops`` (amortised), ``flops_end_to_end`` and ``seconds``.
- Across the seeds ``S`` of a method, the cost is ``mean_S(C_method)`` and the speedup the ratio of
  mean costs ``mean_S(C_uniform) / mean_S(C_method)``; the per-seed ratios
  ``C_uniform,s / C_method,s`` are listed and give the spread ``[min, max]``. Any seed that missed
  makes the mean, the speedup and the spread ``None`` ("never").

Summary shape (``summarize``)::

    {"seeds": [int], "budget": float,
     "target": {"value": mean_s T_s, "per_seed": [T_s], "rule": TARGET_RULE,
                "reach_rule": REACH_RULE, "speedup_rule": SPEEDUP_RULE,
                "fractions": [1.0, 0.98, 0.95]},
     "methods": {name: {
         "seeds": [int], "best": float, "best_spread": [lo, hi], "final": float,
         "final_spread": [lo, hi],
         "to_target": {"100" | "98" | "95": {
             "steps" | "flops" | "flops_end_to_end" | "seconds": {
                 "mean": float | None, "speedup": float | None,
                 "speedup_spread": [lo, hi] | None, "per_seed_speedup": [float | None],
                 "per_seed": [cost | None]},
             "seeds_reaching": int}},
         "mislabeled_selected": float | None, "selection_overhead": float | None,
         "selection_vs_train": float | None, "seconds_per_step": float | None,
         "flops_per_step": float | None}}}

Per-seed lists follow the method's ``seeds``. The other figures are means over its seeds
(``None`` if any seed has none).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

__all__ = [
    "COSTS",
    "REACH_RULE",
    "REL_TOL",
    "SPEEDUP_RULE",
    "STEP_PHASES",
    "TARGET_FRACTIONS",
    "TARGET_RULE",
    "WINDOW",
    "best_moving_average",
    "common_budget",
    "first_reaching",
    "group_runs",
    "level_key",
    "method_order",
    "moving_averages",
    "summarize",
]

TARGET_RULE = "uniform's best 3-evaluation moving average of clean test accuracy"
REACH_RULE = (
    "a run reaches a target at the first evaluation where its own 3-evaluation moving average "
    "is >= the target; the costs are those of that evaluation"
)
SPEEDUP_RULE = (
    "uniform's mean cost over seeds / the method's mean cost; spread: [min, max] of the per-seed "
    "ratios; never if any seed missed"
)
TARGET_FRACTIONS = (1.0, 0.98, 0.95)
"""Target levels, as fractions of uniform's best moving average."""
WINDOW = 3
"""Evaluations per moving-average window."""
REL_TOL = 1e-9
"""Relative tolerance of "reaches": far below any real accuracy difference, above rounding."""
STEP_PHASES = ("score", "select", "remember", "train")
"""The phases of one learner step. ``selection_overhead`` is the "select" phase's share of them
(reference lookup, scoring arithmetic, sampling, gathering); "remember" (the stale-loss memory
update) is part of the step but not of selection; ``selection_vs_train`` compares "select" with the
training forward+backward+update alone."""
COSTS = {
    "steps": "step",
    "flops": "flops",
    "flops_end_to_end": "flops_end_to_end",
    "seconds": "seconds",
}
"""Cost name in the summary -> record key."""

RunKey = tuple[str, int, float]
_PHASE_KEYS = ("selection_overhead", "selection_vs_train", "seconds_per_step", "flops_per_step")


def level_key(fraction: float) -> str:
    """Key of a target level in ``to_target``: ``1.0 -> "100"``, ``0.98 -> "98"``."""
    return f"{round(fraction * 100, 6):g}"


def moving_averages(values: Sequence[float], window: int = WINDOW) -> list[float]:
    """Trailing moving averages: element ``k`` is the window ending at value ``k + w - 1``.

    ``w = min(window, len(values))`` and ``ma_i = fsum(values[i-w+1 : i+1]) / w`` (``fsum`` is
    exactly rounded, so equal windows give equal averages whatever their order).
    """
    if not values:
        raise ValueError("moving_averages needs at least one value")
    w = min(window, len(values))
    return [math.fsum(values[i - w + 1 : i + 1]) / w for i in range(w - 1, len(values))]


def best_moving_average(values: Sequence[float], window: int = WINDOW) -> float:
    """``max_i ma_i`` of :func:`moving_averages` (the target rule)."""
    return max(moving_averages(values, window))


def first_reaching(records: Sequence[dict], target: float, *, window: int = WINDOW) -> dict | None:
    """The first record whose moving average of ``test_acc`` is ``>= target - REL_TOL·|target|``.

    The moving average is the run's own, over the window ending at that record; ``None`` if the
    run never reaches ``target``.
    """
    accs = [r["test_acc"] for r in records]
    floor = target - REL_TOL * abs(target)
    first = min(window, len(accs)) - 1
    for i, ma in enumerate(moving_averages(accs, window), start=first):
        if ma >= floor:
            return records[i]
    return None


def group_runs(records: Iterable[dict]) -> dict[RunKey, list[dict]]:
    """Records by run ``(method, seed, budget)``, each sorted by step (``budget`` defaults to 1)."""
    runs: dict[RunKey, list[dict]] = defaultdict(list)
    for i, r in enumerate(records):
        try:
            key = (r["method"], r["seed"], float(r.get("budget", 1.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(
                f"record {i + 1} (counting from 1) has no valid method, seed or budget: {err!r}"
            ) from err
        runs[key].append(r)
    return {k: sorted(v, key=lambda r: r["step"]) for k, v in runs.items()}


def method_order(runs: dict[RunKey, list[dict]], methods: Sequence[str] | None) -> list[str]:
    """``methods`` checked against the runs, or all methods (uniform first, then by name)."""
    present = {m for m, _, _ in runs}
    if methods is None:
        return sorted(present, key=lambda m: (m != "uniform", m))
    unknown = [m for m in methods if m not in present]
    if unknown:
        raise ValueError(f"no runs of method(s) {unknown}; the records have {sorted(present)}")
    return list(dict.fromkeys(methods))


def common_budget(runs: dict[RunKey, list[dict]], methods: Iterable[str]) -> float:
    """The largest budget at which every one of ``methods`` has a run."""
    methods = list(methods)
    have = [{b for m, _, b in runs if m == name} for name in methods]
    shared = set.intersection(*have) if have else set()
    if not shared:
        raise ValueError(
            f"no budget is shared by all of {methods}: {dict(zip(methods, have, strict=True))}"
        )
    return max(shared)


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean, or ``None`` if any value is ``None`` (or there is none)."""
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)


def _ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or ``None`` when either is missing or ``den`` is 0."""
    return num / den if num is not None and den else None


def _spread(values: Sequence[float | None]) -> list[float] | None:
    return None if not values or any(v is None for v in values) else [min(values), max(values)]


def _cost(record: dict | None, key: str) -> float | None:
    return None if record is None else record[key]


def _speedup(base: list[float | None], mine: list[float | None]) -> dict:
    """Mean cost, ratio-of-means speedup and per-seed ratios for one cost."""
    per_seed_speedup = [_ratio(b, m) for b, m in zip(base, mine, strict=True)]
    return {
        "mean": _mean(mine),
        "speedup": _ratio(_mean(base), _mean(mine)),
        "speedup_spread": _spread(per_seed_speedup),
        "per_seed_speedup": per_seed_speedup,
        "per_seed": mine,
    }


def _to_target(runs: list[list[dict]], uniform: list[list[dict]], levels: list[float]) -> dict:
    """Costs to one target level (one level value per seed) and speedups against uniform."""
    mine = [first_reaching(r, t) for r, t in zip(runs, levels, strict=True)]
    base = [first_reaching(u, t) for u, t in zip(uniform, levels, strict=True)]
    out = {
        name: _speedup([_cost(h, key) for h in base], [_cost(h, key) for h in mine])
        for name, key in COSTS.items()
    }
    out["seeds_reaching"] = sum(h is not None for h in mine)
    return out


def _phase_stats(run: list[dict]) -> dict[str, float | None]:
    """Per-step phase figures of one run, from its last record's cumulative totals."""
    last = run[-1]
    steps = last["step"]
    if not steps:
        return dict.fromkeys(_PHASE_KEYS)
    by = last.get("seconds_by_phase") or {}
    step_s = sum(by.get(p, 0.0) for p in STEP_PHASES) / steps
    select_s = by.get("select", 0.0) / steps
    return {
        "selection_overhead": _ratio(select_s, step_s),
        "selection_vs_train": _ratio(select_s, by.get("train", 0.0) / steps),
        "seconds_per_step": step_s or None,
        "flops_per_step": last["flops"] / steps,
    }


def _method_summary(
    runs: list[list[dict]], uniform: list[list[dict]], targets: list[float]
) -> dict:
    """One method's figures over its seeds (``runs``, ``uniform`` and ``targets`` align)."""
    best = [max(r["test_acc"] for r in run) for run in runs]
    final = [run[-1]["test_acc"] for run in runs]
    out = {
        "best": _mean(best),
        "best_spread": _spread(best),
        "final": _mean(final),
        "final_spread": _spread(final),
        "to_target": {
            level_key(f): _to_target(runs, uniform, [f * t for t in targets])
            for f in TARGET_FRACTIONS
        },
        "mislabeled_selected": _mean([run[-1].get("mislabeled_selected") for run in runs]),
    }
    stats = [_phase_stats(run) for run in runs]
    out.update({k: _mean([s[k] for s in stats]) for k in _PHASE_KEYS})
    return out


def summarize(records: Iterable[dict], *, methods: Sequence[str] | None = None) -> dict:
    """Targets, costs to target and speedups of every method against uniform (see module doc).

    Parameters
    ----------
    records:
        One dict per evaluation (any order across runs; sorted by step within a run).
    methods:
        Methods to summarize, in this order (default: all, uniform first).

    Raises
    ------
    ValueError
        If a seed has no uniform run at the compared budget, or a method has no runs.
    """
    runs = group_runs(records)
    if not any(m == "uniform" for m, _, _ in runs):
        raise ValueError(
            "the records have no uniform run: every seed needs one (it sets the target)"
        )
    names = method_order(runs, methods)
    budget = common_budget(runs, ["uniform", *names])
    at = {(m, s): run for (m, s, b), run in runs.items() if b == budget}
    seeds = sorted({s for _, s in at})
    missing = [s for s in seeds if ("uniform", s) not in at]
    if missing:
        raise ValueError(
            f"seed(s) {missing} have no uniform run at budget {budget:g}: every seed needs one "
            "(it sets the target)"
        )
    targets = {s: best_moving_average([r["test_acc"] for r in at["uniform", s]]) for s in seeds}
    out: dict = {"seeds": seeds, "budget": budget, "methods": {}}
    out["target"] = {
        "value": _mean(list(targets.values())),
        "per_seed": [targets[s] for s in seeds],
        "rule": TARGET_RULE,
        "reach_rule": REACH_RULE,
        "speedup_rule": SPEEDUP_RULE,
        "fractions": list(TARGET_FRACTIONS),
    }
    for m in names:
        mine = [s for s in seeds if (m, s) in at]
        summary = _method_summary(
            [at[m, s] for s in mine], [at["uniform", s] for s in mine], [targets[s] for s in mine]
        )
        out["methods"][m] = {"seeds": mine, **summary}
    return out
