"""Summaries and markdown reports of the two SVP scenarios (``svp-coreset``, ``svp-active``)."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from ..offline.agreement_report import format_agreement_matrix

__all__ = [
    "coreset_summary",
    "format_coreset_report",
    "write_coreset_report",
    "active_summary",
    "format_active_report",
    "write_active_report",
    "rewrite_svp_report",
]


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else None


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _total(cost: dict) -> float:
    return cost["training"] + cost["scoring"] + cost["selection"]


def _selection_times(costs: list[dict]) -> dict[str, dict]:
    """Per score: the proxy's and the target's selection cost (means over seeds) and their ratio
    (training + scoring, the issue's definition; k-center's greedy picks listed apart)."""
    out = {}
    for name in costs[0]["proxy"]:
        proxy = [c["proxy"][name] for c in costs]
        target = [c["target"][name] for c in costs]
        p_ts = _mean([c["training"] + c["scoring"] for c in proxy])
        t_ts = _mean([c["training"] + c["scoring"] for c in target])
        out[name] = {
            "proxy_seconds": p_ts,
            "target_seconds": t_ts,
            "selection_time_ratio": t_ts / p_ts if p_ts else None,
            "proxy_picks_seconds": _mean([c["selection"] for c in proxy]),
            "target_picks_seconds": _mean([c["selection"] for c in target]),
        }
    return out


def _agreement(agreement: dict) -> list[dict]:
    """Rank agreement per score, averaged over seeds."""
    per_score: dict[str, list[dict]] = defaultdict(list)
    for rows in agreement.values():
        for row in rows:
            per_score[row["score"]].append(row)
    table = []
    for score, rows in per_score.items():
        keys = [k for k in rows[0] if k not in ("score", "a", "b", "n")]
        table.append({"score": score, **{k: _mean([r[k] for r in rows]) for k in keys}})
    return table


def coreset_summary(
    rows: list[dict], agreement: dict, costs: list[dict], *, max_keep: float
) -> dict:
    """Accuracy, time split and rank agreement of an ``svp-coreset`` run, averaged over seeds.

    k-center's greedy picks ran once to the largest keep (``max_keep``); a smaller core-set needs
    only the first ``keep / max_keep`` of them, and each pick costs the same, so it is charged that
    share of their time.
    """
    full = [r for r in rows if r["kind"] == "all-data" and r["role"] == "target"]
    proxy_full = [r for r in rows if r["kind"] == "all-data" and r["role"] == "proxy"]
    all_acc = _mean([r["test_acc"] for r in full])
    all_seconds = _mean([r["seconds"]["train"] for r in full])
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "core-set":
            groups[(r["keep"], r["method"])].append(r)

    def proxy_cost(name: str, keep: float) -> float:
        picks_share = keep / max_keep if name == "kcenter" else 1.0
        parts = [c["proxy"][name] for c in costs]
        fixed = _mean([p["training"] + p["scoring"] for p in parts])
        return fixed + picks_share * _mean([p["selection"] for p in parts])

    random_acc = {
        keep: _mean([r["test_acc"] for r in rs])
        for (keep, m), rs in groups.items()
        if m == "random"
    }
    table = []
    for (keep, method), rs in sorted(groups.items()):
        acc = _mean([r["test_acc"] for r in rs])
        score = rs[0]["score"]
        select = (proxy_cost(score, keep) if score else 0.0) + _mean(
            [r["selection_seconds"] for r in rs]
        )
        e2e = select + _mean([r["train_seconds"] for r in rs])
        table.append(
            {
                "keep": keep,
                "method": method,
                "seeds": len(rs),
                "test_acc": acc,
                "test_acc_std": _std([r["test_acc"] for r in rs]),
                "per_seed": [r["test_acc"] for r in sorted(rs, key=lambda r: r["seed"])],
                "vs_all": acc - all_acc if all_acc is not None else None,
                "vs_random": acc - random_acc[keep] if keep in random_acc else None,
                "selection_seconds": select,
                "target_train_seconds": _mean([r["train_seconds"] for r in rs]),
                "end_to_end_seconds": e2e,
                "speedup_vs_all": all_seconds / e2e if all_seconds and e2e else None,
            }
        )
    return {
        "scenario": "svp-coreset",
        "all_data": {
            "test_acc": all_acc,
            "test_acc_std": _std([r["test_acc"] for r in full]),
            "train_seconds": all_seconds,
            "proxy_test_acc": _mean([r["test_acc"] for r in proxy_full]),
        },
        "core_sets": table,
        "selection_time": _selection_times(costs),
        "agreement": _agreement(agreement),
    }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def format_coreset_report(summary: dict) -> str:
    """The ``svp-coreset`` summary as markdown: accuracy and time per core-set, selection time,
    rank agreement."""
    full = summary["all_data"]
    lines = [
        "# svp-coreset",
        "",
        f"Target on all data: test accuracy {_fmt(full['test_acc'])} "
        f"(± {_fmt(full['test_acc_std'])}), training {_fmt(full['train_seconds'], '.1f')} s. "
        f"The proxy on all data: {_fmt(full['proxy_test_acc'])}.",
        "",
        "## Core-sets (target test accuracy; seconds end to end = proxy selection + target training)",
        "",
    ]
    header = [
        "keep",
        "method",
        "acc",
        "± std",
        "vs all",
        "vs random",
        "select s",
        "train s",
        "e2e s",
        "speedup vs all",
    ]
    rows = [
        [
            f"{r['keep']:g}",
            r["method"],
            _fmt(r["test_acc"]),
            _fmt(r["test_acc_std"]),
            _fmt(r["vs_all"], "+.4f"),
            _fmt(r["vs_random"], "+.4f"),
            _fmt(r["selection_seconds"], ".1f"),
            _fmt(r["target_train_seconds"], ".1f"),
            _fmt(r["end_to_end_seconds"], ".1f"),
            _fmt(r["speedup_vs_all"], ".2f") + "×",
        ]
        for r in summary["core_sets"]
    ]
    lines += _table(header, rows)
    lines += ["", "## Selection time (training + scoring), target / proxy", ""]
    header = [
        "score",
        "proxy s",
        "target s",
        "selection_time_ratio",
        "k-center picks s, to the largest keep (proxy / target)",
    ]
    rows = [
        [
            name,
            _fmt(t["proxy_seconds"], ".1f"),
            _fmt(t["target_seconds"], ".1f"),
            _fmt(t["selection_time_ratio"], ".1f") + "×",
            f"{_fmt(t['proxy_picks_seconds'], '.1f')} / {_fmt(t['target_picks_seconds'], '.1f')}",
        ]
        for name, t in summary["selection_time"].items()
    ]
    lines += _table(header, rows)
    lines += ["", "## Rank agreement, proxy vs target (means over seeds)", ""]
    agreement = summary["agreement"]
    if agreement:
        keys = [k for k in agreement[0] if k != "score"]
        lines += _table(
            ["score", *keys], [[a["score"], *(_fmt(a[k], ".3f") for k in keys)] for a in agreement]
        )
    for name, m in summary.get("proxy_matrices", {}).items():
        lines += ["", f"### Spearman between proxies and the target: {name}", ""]
        lines.append(format_agreement_matrix(m["names"], torch.tensor(m["spearman"])))
    return "\n".join(lines) + "\n"


def write_coreset_report(out: Path, summary: dict) -> Path:
    path = out / "report.md"
    path.write_text(format_coreset_report(summary))
    return path


def active_summary(rows: list[dict]) -> dict:
    """Accuracy against labels used per strategy (means over seeds), and selection time per round."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["strategy"], r["round"])].append(r)
    curves: dict[str, list[dict]] = defaultdict(list)
    for (strategy, rnd), rs in sorted(groups.items()):
        curves[strategy].append(
            {
                "round": rnd,
                "labels": _mean([r["labels"] for r in rs]),
                "test_acc": _mean([r["test_acc"] for r in rs]),
                "test_acc_std": _std([r["test_acc"] for r in rs]),
                "selection_seconds": _mean([r.get("selection_seconds") for r in rs]),
                "seeds": len(rs),
            }
        )
    final_random = curves["random"][-1]["test_acc"] if "random" in curves else None
    strategies = {}
    for strategy, points in curves.items():
        reached = [p for p in points if final_random is not None and p["test_acc"] >= final_random]
        rounds = [p["selection_seconds"] for p in points if p["selection_seconds"] is not None]
        strategies[strategy] = {
            "final_test_acc": points[-1]["test_acc"],
            "labels_to_random_final": reached[0]["labels"] if reached else None,
            "selection_seconds_per_round": _mean(rounds),
        }
    return {
        "scenario": "svp-active",
        "curves": dict(curves),
        "strategies": strategies,
        "random_final_test_acc": final_random,
        "selection_time_ratio": _round_time_ratios(strategies),
    }


def _round_time_ratios(strategies: dict[str, dict]) -> dict[str, float]:
    """Per score selected both ways: target's selection seconds per round / the proxy's."""
    ratios = {}
    for name, values in strategies.items():
        if not name.startswith("proxy:"):
            continue
        target = strategies.get("target:" + name.partition(":")[2])
        proxy_s = values["selection_seconds_per_round"]
        if target and proxy_s:
            ratios[name.partition(":")[2]] = target["selection_seconds_per_round"] / proxy_s
    return ratios


def format_active_report(summary: dict) -> str:
    curves = summary["curves"]
    strategies = list(curves)
    labels = [p["labels"] for p in next(iter(curves.values()))]
    lines = [
        "# svp-active",
        "",
        "## Target test accuracy against labels used (means over seeds)",
        "",
    ]
    header = ["labels", *strategies]
    rows = []
    for i, n in enumerate(labels):
        rows.append(
            [
                f"{n:.0f}",
                *(
                    _fmt(curves[s][i]["test_acc"]) if i < len(curves[s]) else "–"
                    for s in strategies
                ),
            ]
        )
    lines += _table(header, rows)
    lines += ["", "## Per strategy", ""]
    header = ["strategy", "final acc", "labels to random's final acc", "selection s / round"]
    rows = [
        [
            s,
            _fmt(v["final_test_acc"]),
            _fmt(v["labels_to_random_final"], ".0f"),
            _fmt(v["selection_seconds_per_round"], ".2f"),
        ]
        for s, v in summary["strategies"].items()
    ]
    lines += _table(header, rows)
    ratios = summary.get("selection_time_ratio") or {}
    if ratios:
        lines += ["", "## Selection time per round, target / proxy", ""]
        lines += _table(["score", "ratio"], [[k, _fmt(v, ".1f") + "×"] for k, v in ratios.items()])
    return "\n".join(lines) + "\n"


def write_active_report(out: Path, summary: dict) -> Path:
    path = out / "report.md"
    path.write_text(format_active_report(summary))
    return path


def rewrite_svp_report(run_dir: str | Path) -> Path | None:
    """Rewrite ``report.md`` of an SVP scenario's folder from its ``summary.json``; ``None`` if
    the folder holds another scenario (or no summary)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not JSON ({err}); rerun the scenario to rewrite it") from err
    writers = {"svp-coreset": write_coreset_report, "svp-active": write_active_report}
    writer = writers.get(summary.get("scenario")) if isinstance(summary, dict) else None
    if writer is None:
        return None
    try:
        return writer(Path(run_dir), summary)
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(
            f"{path} lacks or mistypes the field {err}; rerun the scenario (with --resume: "
            "finished work is kept) to rewrite it"
        ) from err
