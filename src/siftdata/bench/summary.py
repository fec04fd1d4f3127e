"""Turn per-evaluation records into the speedup summary of shared/BENCHMARKS.md.

Per seed, the target is uniform's best ``window``-evaluation moving average of clean test accuracy;
a method reaches it at the first evaluation whose accuracy is at least the target. Speedups are
uniform's cost to the target divided by the method's. Across seeds, a figure is the mean of the
seeds' figures, or ``None`` if any seed never reached the target (``per_seed`` keeps them all).
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

__all__ = ["TARGET_RULE", "summarize", "moving_average_best", "first_reaching"]

TARGET_RULE = "uniform's best 3-evaluation moving average of clean test accuracy"
STEP_PHASES = ("score", "select", "train")
"""The phases of one learner step. ``selection_overhead`` is the "select" phase's share of them
(everything but model forwards and backwards: reference lookup, scoring arithmetic, sampling,
gathering); ``selection_vs_train`` compares it with the training forward+backward+update alone."""
_COSTS = ("steps", "flops", "seconds")


def moving_average_best(values: list[float], window: int = 3) -> float:
    """Best mean of ``window`` consecutive values (the best value if there are fewer)."""
    if len(values) < window:
        return max(values)
    return max(sum(values[i : i + window]) / window for i in range(len(values) - window + 1))


def first_reaching(records: list[dict], target: float) -> dict | None:
    """The first record whose ``test_acc`` reaches ``target``, or ``None``."""
    return next((r for r in records if r["test_acc"] >= target), None)


def _costs_to(records: list[dict], target: float) -> dict[str, float | None]:
    hit = first_reaching(records, target)
    return {c: (hit[c if c != "steps" else "step"] if hit else None) for c in _COSTS}


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _per_step(records: list[dict], phase: str) -> float | None:
    last = records[-1]
    return last["seconds_by_phase"].get(phase, 0.0) / last["step"] if last["step"] else None


def _seed_summary(records: list[dict], uniform: list[dict]) -> dict:
    target = moving_average_best([r["test_acc"] for r in uniform])
    out = {
        "target": target,
        "best": max(r["test_acc"] for r in records),
        "final": records[-1]["test_acc"],
    }
    for suffix, t in (("", target), ("_98", 0.98 * target)):
        mine, base = _costs_to(records, t), _costs_to(uniform, t)
        for c in _COSTS:
            out[f"{c}_to_target{suffix}"] = mine[c]
            out[f"speedup_{c}{suffix}"] = _ratio(base[c], mine[c])
    out["mislabeled_selected"] = records[-1].get("mislabeled_selected")
    step_s = sum(_per_step(records, p) or 0.0 for p in STEP_PHASES)
    select_s = _per_step(records, "select")
    out["selection_overhead"] = _ratio(select_s, step_s)
    out["selection_vs_train"] = _ratio(select_s, _per_step(records, "train"))
    out["seconds_per_step"] = step_s or None
    out["flops_per_step"] = (
        records[-1]["flops"] / records[-1]["step"] if records[-1]["step"] else None
    )
    return out


def _aggregate(per_seed: list[dict]) -> dict:
    agg = {}
    for key in per_seed[0]:
        values = [s[key] for s in per_seed]
        agg[key] = None if any(v is None for v in values) else mean(values)
    for key in ("best", "final"):
        values = [s[key] for s in per_seed]
        agg[f"{key}_spread"] = [min(values), max(values)]
    agg["seeds_reaching_target"] = sum(s["steps_to_target"] is not None for s in per_seed)
    agg["per_seed"] = per_seed
    return agg


def summarize(records: list[dict], *, methods: list[str] | None = None) -> dict:
    """Summary dict: ``target`` (value and rule) and, per method, the figures of BENCHMARKS.md."""
    runs: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in records:
        runs[(r["method"], r["seed"])].append(r)
    seeds = sorted({s for (_, s) in runs})
    methods = methods or sorted({m for (m, _) in runs})
    if any(("uniform", s) not in runs for s in seeds):
        raise ValueError("every seed needs a uniform run: the target is defined by it")
    out: dict = {"methods": {}}
    for m in methods:
        per_seed = [
            _seed_summary(runs[(m, s)], runs[("uniform", s)]) for s in seeds if (m, s) in runs
        ]
        if per_seed:
            out["methods"][m] = _aggregate(per_seed)
    targets = [moving_average_best([r["test_acc"] for r in runs[("uniform", s)]]) for s in seeds]
    out["target"] = {"value": mean(targets), "per_seed": targets, "rule": TARGET_RULE}
    out["seeds"] = seeds
    return out
