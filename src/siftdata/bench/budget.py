"""The budget sweep: final accuracy against budget, and each method's compute multiplier.

A sweep trains every method (uniform included) at several budgets, fractions of a base number of
steps, each run with its learning-rate schedule decayed to its own budget. Records carry
``budget`` and ``steps_budget`` (the run's total steps).

Compute multiplier
------------------
Uniform's curve is its points ``(c_k, A_k)``: mean end-of-run cost and mean final accuracy over
seeds at each of its budgets, sorted by cost. The accuracies are replaced by their running maximum
``E_k = max_{j <= k} A_j``: a user who can spend ``c`` picks the best budget costing at most ``c``,
so the curve is made monotone. For a method with accuracy ``a`` at cost ``c``:

- ``E_0 < a <= E_K``: uniform needs ``u = exp(log c_{j-1} + t (log c_j - log c_{j-1}))`` with
  ``j`` the first point with ``E_j >= a`` and ``t = (a - E_{j-1}) / (E_j - E_{j-1})`` (linear in
  log cost); multiplier ``u / c``, bound ``"="``;
- ``a > E_K`` (above uniform's best): ``c_* / c`` is a lower bound, ``">="``, where ``c_*`` is
  the cost of uniform's best budget (the cheapest with ``E = E_K``). Uniform would need more than
  ``c_*``; how much more is unknown, and larger budgets tried may even do worse (on noisy labels a
  longer uniform run memorises more), so ``c_K / c`` would overstate the bound;
- ``a <= E_0`` (at or below uniform's smallest budget): ``c_0 / c`` is an upper bound, ``"<="``.

It is computed in steps, in FLOPs (amortised) and in FLOPs end to end (uniform has no reference:
its recorded end-to-end FLOPs equal its amortised ones).

Sweep shape (``summarize_budget_sweep``)::

    {"base_steps": int, "budgets": [float], "rule": MULTIPLIER_RULE,
     "methods": {name: [  # one row per budget, in increasing order
         {"budget": float, "seeds": [int], "final": float, "final_spread": [lo, hi],
          "steps": float, "flops": float, "flops_end_to_end": float, "seconds": float,
          "vs_uniform_best": float,   # final − uniform's best final accuracy over its budgets
          "multiplier": {"steps" | "flops" | "flops_end_to_end":
                         {"value": float, "bound": "=" | ">=" | "<="} | None}}]}}

``steps``, ``flops``, ``flops_end_to_end`` and ``seconds`` are means over seeds of the last
record's values. A multiplier is ``None`` where a cost is not positive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .summary import group_runs, method_order

__all__ = ["MULTIPLIER_COSTS", "MULTIPLIER_RULE", "compute_multiplier", "summarize_budget_sweep"]

MULTIPLIER_RULE = (
    "compute uniform needs to match the method's final accuracy / the method's compute; "
    "interpolated linearly in log(cost) on uniform's budget curve made monotone by a running "
    "maximum; >= (uniform's best budget / the method's compute) when the method ends above "
    "uniform's best, <= at or below uniform's smallest budget; Δ best: final accuracy minus "
    "uniform's best"
)
MULTIPLIER_COSTS = {"steps": "step", "flops": "flops", "flops_end_to_end": "flops_end_to_end"}
"""Cost name in the sweep -> record key."""
_END_COSTS = {**MULTIPLIER_COSTS, "seconds": "seconds"}


def _envelope(costs: Sequence[float], accuracies: Sequence[float]) -> tuple[list, list]:
    """Points sorted by cost, accuracies replaced by their running maximum."""
    pairs = sorted(zip(costs, accuracies, strict=True))
    envelope, best = [], -math.inf
    for _, a in pairs:
        best = max(best, a)
        envelope.append(best)
    return [c for c, _ in pairs], envelope


def _log_interpolate(costs: list[float], envelope: list[float], accuracy: float) -> float:
    """Cost at ``accuracy`` on the monotone curve (``envelope[0] < accuracy <= envelope[-1]``)."""
    j = next(i for i, e in enumerate(envelope) if e >= accuracy)
    if envelope[j] == accuracy:
        return costs[j]
    lo, hi = envelope[j - 1], envelope[j]
    t = (accuracy - lo) / (hi - lo)
    log_lo, log_hi = math.log(costs[j - 1]), math.log(costs[j])
    return math.exp(log_lo + t * (log_hi - log_lo))


def compute_multiplier(
    curve_costs: Sequence[float],
    curve_accuracies: Sequence[float],
    accuracy: float,
    cost: float,
) -> tuple[float, str]:
    """How much of uniform's compute matches ``accuracy``, divided by ``cost`` (see module doc).

    Parameters
    ----------
    curve_costs, curve_accuracies:
        Uniform's points ``(c_k, A_k)``, in any order; costs must be positive.
    accuracy, cost:
        The method's final accuracy and its (positive) cost.

    Returns
    -------
    (value, bound)
        ``bound`` is ``"="`` (interpolated), ``">="`` (``accuracy`` above uniform's best: a lower
        bound, uniform's best budget / ``cost``) or ``"<="`` (at or below uniform's smallest
        budget's accuracy: an upper bound).
    """
    if len(curve_costs) != len(curve_accuracies) or not curve_costs:
        raise ValueError(
            "curve_costs and curve_accuracies must be non-empty and of equal length, got "
            f"{len(curve_costs)} and {len(curve_accuracies)}"
        )
    if not all(c > 0 for c in curve_costs) or not cost > 0:
        raise ValueError(f"costs must be > 0, got curve {list(curve_costs)} and cost {cost}")
    costs, envelope = _envelope(curve_costs, curve_accuracies)
    if accuracy > envelope[-1]:  # uniform's best budget (the cheapest reaching its best) fell short
        return costs[envelope.index(envelope[-1])] / cost, ">="
    if accuracy <= envelope[0]:
        return costs[0] / cost, "<="
    return _log_interpolate(costs, envelope, accuracy) / cost, "="


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _base_of(run: list[dict], budget: float) -> int:
    """A run's base step count: its ``base_steps`` tag, else ``steps_budget / budget`` rounded."""
    last = run[-1]
    if "base_steps" in last:
        return int(last["base_steps"])
    return round(last.get("steps_budget", last["step"]) / budget)


def _base_steps(runs: dict) -> int:
    """The base step count, the same for every run (runs have ``round(budget · base)`` steps, so
    ``steps_budget / budget`` alone can be off by one: the records carry ``base_steps``)."""
    bases = {_base_of(run, budget) for (_, _, budget), run in runs.items() if budget > 0}
    if len(bases) != 1:
        raise ValueError(
            f"the runs disagree on the base step count (steps_budget / budget): {bases}"
        )
    return bases.pop()


def _point(runs: list[list[dict]], seeds: list[int], budget: float) -> dict:
    """One method's row at one budget: mean final accuracy and end-of-run costs over seeds."""
    final = [run[-1]["test_acc"] for run in runs]
    row = {"budget": budget, "seeds": seeds, "final": _mean(final)}
    row["final_spread"] = [min(final), max(final)]
    row.update({name: _mean([run[-1][key] for run in runs]) for name, key in _END_COSTS.items()})
    return row


def _multiplier(curve: list[dict], row: dict, name: str) -> dict | None:
    """The multiplier of ``row`` in cost ``name`` on uniform's ``curve``, or ``None``."""
    costs = [p[name] for p in curve]
    if not row[name] > 0 or not all(c > 0 for c in costs):
        return None
    value, bound = compute_multiplier(costs, [p["final"] for p in curve], row["final"], row[name])
    return {"value": value, "bound": bound}


def _rows(runs: dict, method: str) -> list[dict]:
    budgets = sorted({b for m, _, b in runs if m == method})
    rows = []
    for b in budgets:
        seeds = sorted(s for m, s, bb in runs if m == method and bb == b)
        rows.append(_point([runs[method, s, b] for s in seeds], seeds, b))
    return rows


def summarize_budget_sweep(
    records: Iterable[dict], *, methods: Sequence[str] | None = None
) -> dict:
    """Final accuracy and cost per method and budget, with compute multipliers (see module doc).

    Parameters
    ----------
    records:
        One dict per evaluation of every run of the sweep (uniform's included).
    methods:
        Methods to include, in this order (default: all, uniform first).

    Raises
    ------
    ValueError
        Without uniform runs, or when runs disagree on the base step count.
    """
    runs = group_runs(records)
    if not any(m == "uniform" for m, _, _ in runs):
        raise ValueError(
            "the records have no uniform run: the compute multiplier is relative to it"
        )
    names = method_order(runs, methods)
    curve = _rows(runs, "uniform")
    out: dict = {
        "base_steps": _base_steps(runs),
        "budgets": sorted({b for m, _, b in runs if m in names or m == "uniform"}),
        "rule": MULTIPLIER_RULE,
        "methods": {},
    }
    best = max(row["final"] for row in curve)
    for m in names:
        rows = curve if m == "uniform" else _rows(runs, m)
        for row in rows:
            row["multiplier"] = {name: _multiplier(curve, row, name) for name in MULTIPLIER_COSTS}
            row["vs_uniform_best"] = row["final"] - best
        out["methods"][m] = rows
    return out
