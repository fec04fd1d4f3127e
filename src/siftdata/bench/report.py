"""``siftdata report DIR``: a markdown table and PNG plots from a benchmark run folder."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

__all__ = ["format_table", "write_report", "load_run"]

_AXES = (
    ("step", "learner steps", "steps"),
    ("flops", "FLOPs (score + reference + train)", "flops"),
    ("seconds", "wall-clock seconds (score + reference + select + train)", "seconds"),
)


def load_run(run_dir: str | Path) -> tuple[list[dict], dict]:
    """Records and summary of a run folder, with a clear error when it is not one."""
    run_dir = Path(run_dir)
    metrics, summary = run_dir / "metrics.jsonl", run_dir / "summary.json"
    if not metrics.exists() or not summary.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a benchmark run folder (needs metrics.jsonl and summary.json)"
        )
    try:
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        return records, json.loads(summary.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt run folder {run_dir}: {err}") from err


def _fmt(x, spec=".3g", none="never") -> str:
    return none if x is None else format(x, spec)


def _speed(value, speedup, spec) -> str:
    return (
        "never"
        if value is None
        else f"{format(value, spec)} ({speedup:.2f}×)"
        if speedup
        else format(value, spec)
    )


def format_table(summary: dict) -> str:
    """The speedup table as markdown (one row per method; speedups are uniform's cost / method's)."""
    target = summary["target"]
    lines = [
        f"Target: {target['value']:.4f} ({target['rule']}); 98% of it: {0.98 * target['value']:.4f}.",
        "",
        "| method | best | final | steps→target | FLOPs→target | seconds→target | steps→98% | FLOPs→98% | seconds→98% | mislabeled selected | selection overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary["methods"].items():
        lo, hi = m["best_spread"]
        cells = [
            name,
            f"{m['best']:.4f} [{lo:.4f}, {hi:.4f}]",
            f"{m['final']:.4f}",
            _speed(m["steps_to_target"], m["speedup_steps"], ".0f"),
            _speed(m["flops_to_target"], m["speedup_flops"], ".3g"),
            _speed(m["seconds_to_target"], m["speedup_seconds"], ".1f"),
            _speed(m["steps_to_target_98"], m["speedup_steps_98"], ".0f"),
            _speed(m["flops_to_target_98"], m["speedup_flops_98"], ".3g"),
            _speed(m["seconds_to_target_98"], m["speedup_seconds_98"], ".1f"),
            _fmt(m["mislabeled_selected"], ".3f", "–"),
            _fmt(m["selection_overhead"], ".1%", "–"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Seeds: {summary.get('seeds')}. A figure is the mean over seeds (a speedup: the mean of the "
        "seeds' ratios uniform / method); 'never' if any seed missed. Selection overhead: the "
        "select phase's share of a learner step (score + select + train)."
    )
    return "\n".join(lines)


def _mean_curves(records: list[dict]) -> dict[str, dict[str, list[float]]]:
    by = defaultdict(lambda: defaultdict(list))
    for r in records:
        by[r["method"]][r["step"]].append(r)
    curves = {}
    for method, steps in by.items():
        ordered = [steps[s] for s in sorted(steps)]
        curves[method] = {
            key: [sum(r[key] for r in rs) / len(rs) for rs in ordered]
            for key in ("step", "flops", "seconds", "test_acc")
        }
    return curves


def _plots(records: list[dict], summary: dict, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'siftdata[report]'") from err
    curves, paths = _mean_curves(records), []
    for key, label, stem in _AXES:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        for method, c in curves.items():
            points = [  # from the first step on (step 0 is untrained, and at 0 cost for uniform)
                (x, a) for x, a, s in zip(c[key], c["test_acc"], c["step"], strict=True) if s > 0
            ]
            if points:
                ax.plot(*zip(*points, strict=True), label=method, lw=1.6)
        ax.set_xscale("log")  # "cost to target" reads best on a log axis
        ax.axhline(summary["target"]["value"], color="grey", ls="--", lw=1, label="target")
        ax.axhline(
            0.98 * summary["target"]["value"], color="grey", ls=":", lw=1, label="98% of target"
        )
        ax.set_xlabel(label)
        ax.set_ylabel("clean test accuracy")
        ax.set_ylim(*_accuracy_range(curves, summary["target"]["value"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"accuracy_vs_{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _accuracy_range(curves: dict, target: float) -> tuple[float, float]:
    """Y range around the target, from uniform's curve (methods that collapse fall off the chart,
    their figures stay in the table)."""
    shown = [curves["uniform"]] if "uniform" in curves else list(curves.values())
    lo = min(min(c["test_acc"][1:] or c["test_acc"]) for c in shown)
    return max(0.0, lo - 0.05), min(1.0, target + 0.03)


def _only(records: list[dict], summary: dict, methods: list[str]) -> tuple[list[dict], dict]:
    unknown = sorted(set(methods) - set(summary["methods"]))
    if unknown:
        raise ValueError(f"no method(s) {unknown} in this run; it has {list(summary['methods'])}")
    kept = {m: summary["methods"][m] for m in methods}
    return [r for r in records if r["method"] in methods], {**summary, "methods": kept}


def write_report(
    run_dir: str | Path, *, plots: bool = True, methods: list[str] | None = None
) -> Path:
    """Write ``report.md`` (and ``accuracy_vs_{steps,flops,seconds}.png``) into ``run_dir``.

    ``methods`` limits the table and plots to those methods (in that order).
    """
    run_dir = Path(run_dir)
    records, summary = load_run(run_dir)
    if methods:
        records, summary = _only(records, summary, methods)
    text = [f"# {summary.get('scenario', 'benchmark')} report", "", format_table(summary), ""]
    if "reference" in summary:
        text += ["Reference: " + json.dumps(summary["reference"]), ""]
    if plots:
        for p in _plots(records, summary, run_dir):
            text.append(f"![{p.stem}]({p.name})")
    path = run_dir / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path
