"""Scenario ``svp-coreset``: a proxy ranks Fashion-MNIST, the target trains on the core-set it keeps.

Per seed: the proxy (narrow, few epochs) and the target (trained on all data: the baseline, and
the selector SVP replaces) each score every training image by every score; their rankings are
compared (Spearman, Kendall, top-k overlap); then for each keep fraction the target is trained,
with its own recipe and the same number of epochs, on the proxy's core-set per score and policy
and on a random subset of equal size. Every stage is timed (proxy training, scoring, selection,
target training), so the end-to-end cost of selecting with the proxy can be set against training
the target on all data, and against selecting with the target itself.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._config import check_bool, check_float_field, check_int_field, option
from .._seeding import derive_seed
from ..offline.agreement_report import agreement_matrix, agreement_rows, plot_agreement
from ..offline.fit import accuracy, fit
from ..offline.proxy_scores import SCORE_DIRECTIONS, SCORE_NAMES, ScoreRun, parse_score_names
from ..offline.recipe import Recipe
from ..offline.stored import save_selection
from ..offline.subsets import select_subset, subset_size
from .common import resolve_device
from .svp import (
    FmnistSplit,
    Results,
    SvpConfig,
    cached_score_run,
    check_same_run,
    load_split,
    priorities,
)
from .svp_report import coreset_summary, write_coreset_report

__all__ = ["CoresetConfig", "check_coreset_options", "run_svp_coreset"]


@dataclass
class CoresetConfig:
    """Keep fractions, which scores and policies build core-sets, and the score options."""

    keep: tuple[float, ...] = option((0.3, 0.5, 0.7), "comma-separated fractions of the data kept")
    scores: tuple[str, ...] = option(
        ("forgetting", "el2n", "least-confidence", "kcenter"),
        f"scores whose core-sets the target trains on (from {', '.join(SCORE_NAMES)}); the "
        "rank agreement covers all of them",
    )
    rank_scores: tuple[str, ...] = option(
        SCORE_NAMES, "scores the proxy and the target rank the data by (agreement table)"
    )
    stratified: tuple[str, ...] = option(
        ("el2n",), "scores that also get a stratified (coverage-centric) core-set"
    )
    proxy_variants: tuple[str, ...] = option(
        (),
        "more proxies for the rank-agreement matrix, as model:width:epochs (e.g. "
        "mlp:0.25:1,cnn:0.5:2); every score but kcenter",
    )
    class_balanced: bool = option(False, "balance every core-set over the classes")
    drop_hardest: float = option(0.0, "stratified: share of the hardest examples dropped first")
    el2n_runs: int = option(2, "EL2N: short runs averaged")
    el2n_epochs: int = option(1, "EL2N: epochs of each short run")

    def __post_init__(self) -> None:
        if not self.keep:
            raise ValueError("keep must list at least one fraction")
        for k in self.keep:
            check_float_field(k, "keep", low=0.0, high=1.0, low_open=True)
        self.scores = parse_score_names(self.scores)
        self.rank_scores = parse_score_names(self.rank_scores)
        self.stratified = parse_score_names(self.stratified) if self.stratified else ()
        missing = [
            name for name in (*self.scores, *self.stratified) if name not in self.rank_scores
        ]
        if missing:
            raise ValueError(f"scores {missing} build core-sets, so rank_scores must include them")
        if "kcenter" in self.stratified:
            raise ValueError("kcenter is a coverage pick order, not a score to stratify")
        for variant in self.proxy_variants:
            parse_variant(variant, Recipe())
        check_bool(self.class_balanced, "class_balanced")
        check_float_field(self.drop_hardest, "drop_hardest", low=0.0, high=0.99)
        check_int_field(self.el2n_runs, "el2n_runs", low=1)
        check_int_field(self.el2n_epochs, "el2n_epochs", low=1)


def parse_variant(text: str, base: Recipe) -> Recipe:
    """``"mlp:0.25:1"`` → ``base`` with that model, width and epochs."""
    parts = text.split(":")
    try:
        model, width, epochs = parts[0], float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise IndexError
    except (IndexError, ValueError):
        raise ValueError(f"a proxy variant is model:width:epochs, got {text!r}") from None
    return base.proxy(model=model, width=width, epochs=epochs)


def _variant_runs(out, split, svp, coreset, seed, device) -> dict[str, ScoreRun]:
    """The extra proxies' score runs (no k-center: its pick order is not a graded ranking)."""
    names = tuple(n for n in coreset.rank_scores if n != "kcenter")
    runs = {}
    for text in coreset.proxy_variants:
        recipe = parse_variant(text, svp.target())
        runs[recipe.label()] = cached_score_run(
            out / "scores" / f"seed{seed}" / f"variant-{text.replace(':', '-')}",
            recipe,
            split,
            names,
            seed=derive_seed(seed, f"svp-variant-{text}"),
            device=device,
            el2n_runs=coreset.el2n_runs,
            el2n_epochs=coreset.el2n_epochs,
            progress=svp.progress,
        )
    return runs


def _matrices(runs: dict[str, ScoreRun], variants: dict[str, ScoreRun]) -> dict[str, dict]:
    """Per score: Spearman between every pair of the variants, the proxy and the target."""
    everyone = {**variants, **{f"{role} {run.recipe.label()}": run for role, run in runs.items()}}
    ranked = {label: priorities(run) for label, run in everyone.items()}
    out = {}
    for name in next(iter(variants.values())).scores:
        rankings = {label: scores[name] for label, scores in ranked.items()}
        labels, matrix = agreement_matrix(rankings, method="spearman")
        out[name] = {"names": labels, "spearman": matrix.tolist()}
    return out


def check_coreset_options(svp: SvpConfig, coreset: CoresetConfig) -> None:
    """Checks that need both configs (the dataclasses check their own fields)."""
    if coreset.el2n_epochs > svp.target_epochs:
        raise ValueError(
            f"el2n_epochs ({coreset.el2n_epochs}) should be short runs, not longer than the "
            f"target's {svp.target_epochs} epochs"
        )


def _score_runs(out: Path, split, svp, coreset, seed, device, results) -> dict[str, ScoreRun]:
    """The proxy's and the target's score runs (the target's all-data accuracy recorded too)."""
    names = coreset.rank_scores
    picks = subset_size(len(split), keep=max(coreset.keep))
    options = {
        "el2n_runs": coreset.el2n_runs,
        "el2n_epochs": coreset.el2n_epochs,
        "kcenter_picks": picks,
        "progress": svp.progress,
    }
    runs = {}
    for role, recipe in (("proxy", svp.proxy()), ("target", svp.target())):

        def record(run: ScoreRun, role=role) -> None:
            acc = accuracy(run.fitted.model, split.test_inputs, split.test_labels)
            results.add(
                {
                    "key": f"seed{seed}/{role}/all",
                    "kind": "all-data",
                    "seed": seed,
                    "role": role,
                    "model": run.recipe.label(),
                    "test_acc": acc,
                    "seconds": run.seconds,
                    "examples": len(split),
                }
            )

        runs[role] = cached_score_run(
            out / "scores" / f"seed{seed}" / role,
            recipe,
            split,
            names,
            seed=derive_seed(seed, f"svp-{role}"),
            device=device,
            after_training=record,
            shard_dir=out / "shards" / f"seed{seed}" / role,
            **options,
        )
    return runs


def _train_on(split: FmnistSplit, kept: torch.Tensor, svp: SvpConfig, seed: int, device) -> dict:
    kept = kept.to(split.labels.device)
    fitted = fit(
        svp.target(),
        split.inputs[kept],
        split.labels[kept],
        seed=derive_seed(seed, "svp-target-subset"),
        device=device,
        progress=svp.progress,
        desc=f"target on {kept.numel()}",
    )
    return {
        "test_acc": accuracy(fitted.model, split.test_inputs, split.test_labels),
        "train_seconds": fitted.seconds,
        "examples": int(kept.numel()),
    }


def _core_sets(coreset: CoresetConfig, ranked: dict[str, Tensor], split, keep: float, seed: int):
    """``(method, policy, score, kept positions, selection seconds)`` for one keep fraction, from
    the proxy's scores ``ranked`` (each oriented so that higher is kept first)."""
    labels = split.labels.cpu() if coreset.class_balanced else None
    plans = [(name, "hardest") for name in coreset.scores]
    plans += [(name, "stratified") for name in coreset.stratified]
    for name, policy in plans:
        start = time.perf_counter()
        kept = select_subset(
            ranked[name],
            policy=policy,
            keep=keep,
            labels=labels,
            drop_hardest=coreset.drop_hardest,
            seed=derive_seed(seed, f"stratified-{name}-{keep}"),
        )
        method = name if policy == "hardest" else f"{name}/stratified"
        yield method, policy, name, kept, time.perf_counter() - start
    g = torch.Generator().manual_seed(derive_seed(seed, f"random-{keep}"))
    n = len(split)
    kept = torch.sort(torch.randperm(n, generator=g)[: subset_size(n, keep=keep)]).values
    yield "random", "random", None, kept, 0.0


def run_svp_coreset(out: Path, svp: SvpConfig, coreset: CoresetConfig) -> dict:
    """Run the scenario into ``out`` (resuming what an earlier run there finished)."""
    check_coreset_options(svp, coreset)
    device = resolve_device(svp.device)
    split = load_split(device, svp.pool_size)
    check_same_run(out, svp, coreset)
    (out / "config.json").write_text(
        json.dumps({"svp": asdict(svp), "coreset": asdict(coreset)}, indent=2) + "\n"
    )
    results = Results(out / "results.jsonl")
    agreement, matrices = {}, {}
    for seed in range(svp.seeds):
        runs = _score_runs(out, split, svp, coreset, seed, device, results)
        ranked = {role: priorities(run) for role, run in runs.items()}
        agreement[seed] = agreement_rows(ranked["proxy"], ranked["target"])
        if coreset.proxy_variants:
            variants = _variant_runs(out, split, svp, coreset, seed, device)
            matrices[seed] = _matrices(runs, variants)
        if seed == 0:
            _plot(out, ranked)
        costs = {role: {name: run.cost(name) for name in run.scores} for role, run in runs.items()}
        (out / f"costs-seed{seed}.json").write_text(json.dumps(costs, indent=2) + "\n")
        for keep in coreset.keep:
            for plan in _core_sets(coreset, ranked["proxy"], split, keep, seed):
                _core_set_run(out, plan, split, svp, (seed, keep), device, results)
    rows = _current_rows(results, svp, coreset)
    summary = coreset_summary(rows, agreement, _costs(out, svp.seeds), max_keep=max(coreset.keep))
    summary["proxy_matrices"] = _mean_matrices(matrices)
    summary["config"] = {"svp": asdict(svp), "coreset": asdict(coreset)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_coreset_report(out, summary)
    return summary


def _current_rows(results: Results, svp: SvpConfig, coreset: CoresetConfig) -> list[dict]:
    """The rows of this run's seeds, keeps and core-sets (a folder may hold more from before)."""
    methods = {*coreset.scores, *(f"{name}/stratified" for name in coreset.stratified), "random"}
    return [
        r
        for r in results.rows.values()
        if r["seed"] < svp.seeds
        and (r["kind"] == "all-data" or (r["keep"] in coreset.keep and r["method"] in methods))
    ]


def _core_set_run(out, plan, split, svp, seed_keep, device, results) -> None:
    """Train the target on one core-set (unless an earlier run did) and record the row."""
    method, policy, score, kept, seconds = plan
    seed, keep = seed_keep
    key = f"seed{seed}/keep{keep:g}/{method}"
    if results.get(key) is not None:
        return
    _save_selection(out, key, kept, split, policy, score, keep)
    row = {"kind": "core-set", "seed": seed, "keep": keep, "method": method, "policy": policy}
    row |= {"score": score, "selection_seconds": seconds}
    results.add({"key": key, **row, **_train_on(split, kept, svp, seed, device)})


def _mean_matrices(matrices: dict[int, dict]) -> dict:
    """Each score's Spearman matrix averaged over seeds."""
    if not matrices:
        return {}
    first = next(iter(matrices.values()))
    return {
        name: {
            "names": m["names"],
            "spearman": torch.tensor([per_seed[name]["spearman"] for per_seed in matrices.values()])
            .mean(dim=0)
            .tolist(),
        }
        for name, m in first.items()
    }


def _costs(out: Path, seeds: int) -> list[dict]:
    return [json.loads((out / f"costs-seed{s}.json").read_text()) for s in range(seeds)]


def _save_selection(out, key, kept, split, policy, score, keep) -> None:
    save_selection(
        out / "selections" / key.replace("/stratified", "-stratified"),
        kept,
        policy=policy,
        n_total=len(split),
        fingerprint=split.fingerprint,
        score=score,
        direction=SCORE_DIRECTIONS[score] if score else None,
        keep=keep,
    )


def _plot(out: Path, ranked: dict) -> None:
    with contextlib.suppress(ImportError):  # no report extra: the tables still tell the story
        plot_agreement(ranked["proxy"], ranked["target"], out / "agreement.png")
