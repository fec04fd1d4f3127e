"""``siftdata report DIR``: markdown tables and PNG plots from a run folder.

A bench folder holds ``metrics.jsonl`` and ``summary.json``
(:func:`~siftdata.bench.summary.summarize`, and for a sweep a ``"budget_sweep"`` section): the
report shows the speedup tables, the budget table and the plots. A ``train`` folder holds only
``metrics.jsonl``: the report shows one row per run and the accuracy curves, with no target or
speedups.

Plots are built on :class:`matplotlib.figure.Figure` (its own Agg canvas): matplotlib's
process-wide backend is left alone. matplotlib is the ``report`` extra, imported when plotting.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from .budget import summarize_budget_sweep
from .summary import TARGET_FRACTIONS, common_budget, group_runs, level_key

__all__ = ["format_budget_table", "format_run_table", "format_table", "load_run", "write_report"]

_AXES = (
    ("step", "learner steps", "steps"),
    ("flops", "FLOPs, amortised (scoring + selection + training + reference cache fill)", "flops"),
    ("seconds", "wall-clock seconds, amortised", "seconds"),
)
_RECORD_TYPES = {
    "method": str,
    "seed": int,
    "step": int,
    "test_acc": (int, float),
    "flops": (int, float),
    "seconds": (int, float),
}
_REDO = "re-run the benchmark or delete it"


def _bad_file(path: Path, problem: str, redo: str = _REDO) -> ValueError:
    return ValueError(f"{path}: {problem}; {redo}")


def _read_metrics(path: Path) -> list[dict]:
    """Records of ``metrics.jsonl``, each checked for the keys the report reads."""
    redo = "re-run the benchmark, or delete the bad line (its run is then redone on --resume)"
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise _bad_file(path, f"cannot be read ({err})") from err
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise _bad_file(path, f"line {n} is not valid JSON ({err})", redo) from err
        bad = (
            [k for k, t in _RECORD_TYPES.items() if not isinstance(rec.get(k), t)]
            if isinstance(rec, dict)
            else ["(not a JSON object)"]
        )
        budget = rec.get("budget", 1.0) if isinstance(rec, dict) else 1.0
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            bad.append("budget")
        if bad:
            raise _bad_file(path, f"line {n} lacks or mistypes {bad}", redo)
        records.append(rec)
    if not records:
        raise _bad_file(path, "it holds no records")
    return records


def _summary_problem(summary) -> str | None:
    """What is wrong with a loaded summary's structure, or ``None``."""
    if not isinstance(summary, dict):
        return "it is not a JSON object"
    target, methods = summary.get("target"), summary.get("methods")
    if not isinstance(target, dict) or not isinstance(target.get("value"), (int, float)):
        return "'target' is missing or has no numeric 'value'"
    if not isinstance(methods, dict) or not methods:
        return "'methods' is missing or empty"
    for name, m in methods.items():
        if not isinstance(m, dict) or not isinstance(m.get("to_target"), dict):
            return f"method {name!r} has no 'to_target' (written by an older siftdata?)"
    return None


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad_file(path, f"cannot be read as JSON ({err})") from err
    problem = _summary_problem(summary)
    if problem:
        raise _bad_file(path, problem)
    return summary


def load_run(run_dir: str | Path) -> tuple[list[dict], dict | None]:
    """Records and summary of a run folder (summary ``None`` for a ``train`` folder).

    Raises
    ------
    FileNotFoundError
        If the folder has no ``metrics.jsonl`` and no ``summary.json``.
    ValueError
        If either file is unreadable or malformed (the message names the file).
    """
    run_dir = Path(run_dir)
    metrics, summary = run_dir / "metrics.jsonl", run_dir / "summary.json"
    if not metrics.exists() and not summary.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a benchmark run folder: it has neither metrics.jsonl nor "
            "summary.json"
        )
    if not metrics.exists():
        raise FileNotFoundError(f"{metrics} is missing; {_REDO}")
    records = _read_metrics(metrics)
    return records, _read_summary(summary) if summary.exists() else None


def _fmt(x, spec: str, none: str = "–") -> str:
    return none if x is None else format(x, spec)


def _steps_cell(cost: dict) -> str:
    """``"1850 (2.57×)"``: mean steps and speedup; ``"never"`` if a seed missed."""
    if cost["mean"] is None:
        return "never"
    return f"{cost['mean']:.0f}" + (f" ({cost['speedup']:.2f}×)" if cost["speedup"] else "")


def _speedup_cell(cost: dict) -> str:
    """``"2.57× [2.10, 3.10]"``: speedup and per-seed spread (one seed: no spread)."""
    if cost["speedup"] is None:
        return "never" if cost["mean"] is None else "–"
    spread = cost["speedup_spread"]
    several = spread is not None and len(cost["per_seed_speedup"]) > 1
    return f"{cost['speedup']:.2f}×" + (f" [{spread[0]:.2f}, {spread[1]:.2f}]" if several else "")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(names: list[str]) -> list[str]:
    return [_row(names), "|" + "---|" * len(names)]


def format_table(summary: dict) -> str:
    """The speedup tables as markdown (speedups: uniform's mean cost / the method's)."""
    target = summary["target"]
    levels = [level_key(f) for f in target.get("fractions", TARGET_FRACTIONS)]
    shares = "; ".join(f"{k}%: {float(k) / 100 * target['value']:.4f}" for k in levels)
    at = f" at budget {summary['budget']:g}" if isinstance(summary.get("budget"), float) else ""
    lines = [f"Target{at}: {target['value']:.4f} ({target['rule']}); {shares}.", ""]
    lines += _header(
        ["method", "best [min, max]", "final", "mislabeled selected", "selection overhead"]
        + [f"steps→{k}%" for k in levels]
    )
    for name, m in summary["methods"].items():
        lo, hi = m["best_spread"]
        cells = [name, f"{m['best']:.4f} [{lo:.4f}, {hi:.4f}]", f"{m['final']:.4f}"]
        cells += [_fmt(m["mislabeled_selected"], ".3f"), _fmt(m["selection_overhead"], ".1%")]
        lines.append(_row(cells + [_steps_cell(m["to_target"][k]["steps"]) for k in levels]))
    costs = (("flops", "FLOPs"), ("flops_end_to_end", "FLOPs e2e"), ("seconds", "seconds"))
    lines += ["", *_header(["method"] + [f"{lab}→{k}%" for _, lab in costs for k in levels])]
    for name, m in summary["methods"].items():
        cells = [_speedup_cell(m["to_target"][k][c]) for c, _ in costs for k in levels]
        lines.append(_row([name, *cells]))
    lines += [
        "",
        f"Seeds: {summary.get('seeds')}. Reach: {target.get('reach_rule', '')}. Speedup: "
        f"{target.get('speedup_rule', '')}. FLOPs amortised: learner scoring + selection + "
        "training + the reference's cache fill; end to end (e2e): plus the reference's training. "
        "Selection overhead: the select phase's share of a learner step (score + select + "
        "remember + train).",
    ]
    return "\n".join(lines)


def _multiplier_cell(m: dict | None) -> str:
    """``"2.31×"``, ``"≥ 2.0×"`` (lower bound) or ``"≤ 0.8×"`` (upper bound)."""
    if m is None:
        return "–"
    if m["bound"] == "=":
        return f"{m['value']:.2f}×"
    # a bound is rounded away from the claim: lower bounds down, upper bounds up
    lower = m["bound"] == ">="
    shown = (math.floor if lower else math.ceil)(m["value"] * 100) / 100
    return f"{'≥' if lower else '≤'} {shown:.2f}×"


def format_budget_table(summary: dict) -> str:
    """The budget sweep as markdown: per method and budget, final accuracy, cost, multipliers."""
    sweep = summary["budget_sweep"]
    lines = [f"Budget sweep: base {sweep['base_steps']} steps × {sweep['budgets']}.", ""]
    lines += _header(
        ["method", "budget", "final [min, max]", "Δ best", "steps", "FLOPs", "FLOPs e2e"]
        + ["× steps", "× FLOPs", "× FLOPs e2e"]
    )
    for name, rows in sweep["methods"].items():
        for r in rows:
            lo, hi = r["final_spread"]
            cells = [name, f"{r['budget']:g}", f"{r['final']:.4f} [{lo:.4f}, {hi:.4f}]"]
            cells += [
                f"{r['vs_uniform_best']:+.4f}",
                f"{r['steps']:.0f}",
                f"{r['flops']:.3g}",
                f"{r['flops_end_to_end']:.3g}",
            ]
            mult = r["multiplier"]
            cells += [_multiplier_cell(mult[k]) for k in ("steps", "flops", "flops_end_to_end")]
            lines.append(_row(cells))
    lines += ["", f"Multiplier (×): {sweep['rule']}."]
    return "\n".join(lines)


def format_run_table(records: list[dict]) -> str:
    """One row per run (method, seed, budget): steps, best and final accuracy, cost at the end."""
    runs = group_runs(records)
    several = len({b for _, _, b in runs}) > 1
    names = ["method", "seed", *(["budget"] if several else [])]
    lines = _header(names + ["steps", "best", "final", "FLOPs", "seconds", "mislabeled selected"])
    for (method, seed, budget), run in sorted(runs.items()):
        last = run[-1]
        cells = [method, str(seed), *([f"{budget:g}"] if several else [])]
        cells += [str(last["step"]), f"{max(r['test_acc'] for r in run):.4f}"]
        cells += [f"{last['test_acc']:.4f}", f"{last['flops']:.3g}", f"{last['seconds']:.1f}"]
        lines.append(_row(cells + [_fmt(last.get("mislabeled_selected"), ".3f")]))
    return "\n".join(lines)


def _figure():
    """A fresh Figure with one Axes (no pyplot, no backend switch)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'siftdata[report]'") from err
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    return fig, fig.subplots()


def _save(fig, ax, path: Path, xlabel: str) -> Path:
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")  # costs span orders of magnitude
    ax.xaxis.set_minor_formatter(NullFormatter())  # unlabelled minor ticks: no overlapping text
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clean test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _mean_curves(records: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per method, the mean over seeds at each step of step, flops, seconds and accuracy."""
    runs = group_runs(records)
    budget = common_budget(runs, {m for m, _, _ in runs})  # several budgets: the largest shared
    by: dict = defaultdict(lambda: defaultdict(list))
    for (method, _, b), run in runs.items():
        for r in run if b == budget else ():
            by[method][r["step"]].append(r)
    return {
        method: {
            key: [math.fsum(r[key] for r in steps[s]) / len(steps[s]) for s in sorted(steps)]
            for key in ("step", "flops", "seconds", "test_acc")
        }
        for method, steps in by.items()
    }


def _accuracy_range(curves: dict, target: float | None) -> tuple[float, float]:
    """Y range: from below uniform's curve (methods that collapse fall off; the table keeps them)
    to above the best curve and the target."""
    shown = [curves["uniform"]] if "uniform" in curves else list(curves.values())
    lo = min(min(c["test_acc"][1:] or c["test_acc"]) for c in shown)
    hi = max([max(c["test_acc"]) for c in curves.values()] + [target or 0.0])
    return max(0.0, lo - 0.05), min(1.0, hi + 0.03)


def _curve_plots(records: list[dict], target: dict | None, out: Path) -> list[Path]:
    """``accuracy_vs_{steps,flops,seconds}.png``, with the target levels when there is a target."""
    curves, paths = _mean_curves(records), []
    value = target["value"] if target else None
    for key, label, stem in _AXES:
        fig, ax = _figure()
        for method, c in curves.items():
            points = [  # from the first step on: step 0 is the untrained model, at zero cost
                (x, a) for x, a, s in zip(c[key], c["test_acc"], c["step"], strict=True) if s > 0
            ]
            if points:
                ax.plot(*zip(*points, strict=True), label=method, lw=1.6)
        fractions = target.get("fractions", TARGET_FRACTIONS) if target else ()
        for f, style in zip(fractions, ("--", "-.", ":"), strict=False):
            ax.axhline(f * value, color="grey", ls=style, lw=1, label=f"{level_key(f)}% target")
        ax.set_ylim(*_accuracy_range(curves, value))
        paths.append(_save(fig, ax, out / f"accuracy_vs_{stem}.png", label))
    return paths


def _sweep_plots(sweep: dict, out: Path) -> list[Path]:
    """``final_accuracy_vs_budget.png`` (x: steps) and ``final_accuracy_vs_flops.png``."""
    paths = []
    for key, label, stem in (("steps", "learner steps", "budget"), ("flops", _AXES[1][1], "flops")):
        fig, ax = _figure()
        for method, rows in sweep["methods"].items():
            ax.plot([r[key] for r in rows], [r["final"] for r in rows], marker="o", label=method)
        ax.set_title("final accuracy at each budget (mean over seeds)", fontsize=9)
        path = _save(fig, ax, out / f"final_accuracy_vs_{stem}.png", label)
        if key == "steps":  # label the budgets themselves (after _save set the log scale)
            steps = sorted({r["steps"] for rows in sweep["methods"].values() for r in rows})
            ax.set_xticks(steps, [f"{s:g}" for s in steps])
            fig.savefig(path)
        paths.append(path)
    return paths


def _only(records: list[dict], summary: dict | None, methods: list[str]):
    """Records and summary limited to ``methods`` (in that order)."""
    have = (
        list(summary["methods"]) if summary else list(dict.fromkeys(r["method"] for r in records))
    )
    unknown = [m for m in methods if m not in have]
    if unknown:
        raise ValueError(f"no method(s) {unknown} in this run; it has {have}")
    records = [r for r in records if r["method"] in methods]
    if summary is None:
        return records, None
    summary = {**summary, "methods": {m: summary["methods"][m] for m in methods}}
    if isinstance(summary.get("budget_sweep"), dict):
        sweep = summary["budget_sweep"]
        kept = {m: rows for m, rows in sweep.get("methods", {}).items() if m in methods}
        summary["budget_sweep"] = {**sweep, "methods": kept}
    return records, summary


def _with_sweep(records: list[dict], summary: dict) -> dict:
    """The summary, with a ``budget_sweep`` computed from the records when they hold several
    budgets and the summary has none."""
    budgets = {float(r.get("budget", 1.0)) for r in records}
    has_uniform = any(r["method"] == "uniform" for r in records)
    if "budget_sweep" in summary or len(budgets) < 2 or not has_uniform:
        return summary
    sweep = summarize_budget_sweep(records, methods=list(summary["methods"]))
    return {**summary, "budget_sweep": sweep}


def _bench_text(records: list[dict], summary: dict, path: Path) -> list[str]:
    """The tables of a bench folder; a summary of the wrong shape becomes a ValueError."""
    try:
        text = [format_table(summary), ""]
        if summary.get("budget_sweep") is not None:
            text += ["## Budget sweep", "", format_budget_table(summary), ""]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise _bad_file(path, f"does not have the expected shape ({err!r})") from err
    if "reference" in summary:
        text += ["Reference: " + json.dumps(summary["reference"]), ""]
    return text


def write_report(
    run_dir: str | Path, *, plots: bool = True, methods: list[str] | None = None
) -> Path:
    """Write ``report.md`` (and PNG plots) into ``run_dir``; return its path.

    ``methods`` limits the tables and plots to those methods (in that order). A bench folder gets
    the speedup tables (and the budget table and ``final_accuracy_vs_{budget,flops}.png`` for a
    sweep); a ``train`` folder gets one row per run. Both get
    ``accuracy_vs_{steps,flops,seconds}.png``.
    """
    run_dir = Path(run_dir)
    records, summary = load_run(run_dir)
    if methods:
        records, summary = _only(records, summary, methods)
    if summary is None:
        text = ["# train report", "", format_run_table(records), ""]
    else:
        summary = _with_sweep(records, summary)
        text = [f"# {summary.get('scenario', 'benchmark')} report", ""]
        text += _bench_text(records, summary, run_dir / "summary.json")
    if plots:
        target = summary["target"] if summary else None
        paths = _curve_plots(records, target, run_dir)
        if summary is not None and summary.get("budget_sweep") is not None:
            paths += _sweep_plots(summary["budget_sweep"], run_dir)
        text += [f"![{p.stem}]({p.name})" for p in paths]
    path = run_dir / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path
