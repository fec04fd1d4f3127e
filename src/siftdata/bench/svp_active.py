"""Scenario ``svp-active``: active learning on Fashion-MNIST, selecting with a proxy vs the target.

Per seed, every strategy starts from the same random labeled seed set. Each round the target is
trained on the labeled set (its test accuracy against labels used is the curve), then a selector
picks ``round_size`` unlabeled examples, which are "labeled" with their known labels:

- ``random``: uniformly at random;
- ``proxy:<score>``: a proxy trained on the labeled set (the SVP way) scores the unlabeled pool;
- ``target:<score>``: the target just trained scores it (the expensive way SVP replaces).

Scores: ``least-confidence``, ``entropy``, ``margin`` (most uncertain first) and ``kcenter``
(greedy k-center on the selector's embeddings, the labeled set as initial centers). A round's
selection time is the selector's training plus scoring plus picking. Every fit runs at least
``min_steps`` updates (small labeled sets get more epochs), its schedule decayed to its length.
The labeled set of every round is saved as a selection store, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._config import check_int_field, option
from .._seeding import derive_seed
from ..offline.fit import Fitted, accuracy, fit, sync
from ..offline.kcenter import k_center_greedy
from ..offline.proxy_scores import OUTPUT_SCORERS, SCORE_DIRECTIONS
from ..offline.recipe import Recipe
from ..offline.scoring import score_dataset
from ..offline.stored import keep_priority, load_selection, save_selection
from .common import resolve_device
from .svp import FmnistSplit, Results, SvpConfig, check_same_run, load_split
from .svp_report import active_summary, write_active_report

__all__ = ["ActiveConfig", "ACTIVE_SCORES", "parse_strategy", "run_svp_active"]

ACTIVE_SCORES = ("least-confidence", "entropy", "margin", "kcenter")


def parse_strategy(name: str) -> tuple[str, str | None]:
    """``"random"`` → ``("random", None)``; ``"proxy:entropy"`` → ``("proxy", "entropy")``."""
    if name == "random":
        return "random", None
    selector, _, score = name.partition(":")
    if selector not in ("proxy", "target") or score not in ACTIVE_SCORES:
        raise ValueError(
            f"strategy must be random or proxy:<score> / target:<score> with a score from "
            f"{', '.join(ACTIVE_SCORES)}; got {name!r}"
        )
    return selector, score


@dataclass
class ActiveConfig:
    """The labeled seed set, the rounds, the strategies and the fits' minimum length."""

    initial: int = option(1000, "labeled seed set size (random)")
    round_size: int = option(1000, "labels added per round")
    rounds: int = option(4, "selection rounds")
    strategies: tuple[str, ...] = option(
        (
            "random",
            "proxy:least-confidence",
            "proxy:entropy",
            "proxy:margin",
            "proxy:kcenter",
            "target:least-confidence",
            "target:kcenter",
        ),
        "comma-separated strategies: random, proxy:<score>, target:<score>",
    )
    min_steps: int = option(400, "each target fit runs at least this many updates")

    def __post_init__(self) -> None:
        check_int_field(self.initial, "initial", low=1)
        check_int_field(self.round_size, "round_size", low=1)
        check_int_field(self.rounds, "rounds", low=1)
        check_int_field(self.min_steps, "min_steps", low=1)
        if not self.strategies:
            raise ValueError("strategies must list at least one strategy")
        for name in self.strategies:
            parse_strategy(name)


def check_active_options(active: ActiveConfig, n: int = 60000) -> None:
    final = active.initial + active.rounds * active.round_size
    if final > n:
        raise ValueError(
            f"initial + rounds · round_size = {final} labels exceeds the {n} training examples"
        )


def _long_enough(recipe: Recipe, n: int, min_steps: int) -> Recipe:
    """``recipe`` with enough epochs for ``min_steps`` updates on ``n`` examples."""
    epochs = max(recipe.epochs, math.ceil(min_steps / math.ceil(n / recipe.batch_size)))
    return recipe.proxy(epochs=epochs)


def _fit(recipe: Recipe, split: FmnistSplit, labeled: Tensor, min_steps, seed, device, progress):
    recipe = _long_enough(recipe, labeled.numel(), min_steps)
    rows = labeled.to(split.labels.device)
    return fit(
        recipe,
        split.inputs[rows],
        split.labels[rows],
        seed=seed,
        device=device,
        progress=progress,
        desc=f"{recipe.label()} on {labeled.numel()}",
    )


def _unlabeled(n: int, labeled: Tensor) -> Tensor:
    """The positions ``0 … n−1`` not in ``labeled``, in order."""
    is_labeled = torch.zeros(n, dtype=torch.bool)
    is_labeled[labeled] = True
    return torch.nonzero(~is_labeled).flatten()


def _pick(model, split: FmnistSplit, labeled: Tensor, score: str, k: int, seed: int) -> Tensor:
    """``k`` new positions chosen by ``score`` with ``model`` (labels of the pool unused)."""
    if score == "kcenter":
        scored = score_dataset(model, split.inputs, None, {}, embeddings=True, progress=False)
        emb = scored.embeddings.to(split.inputs.device)
        return k_center_greedy(emb, k, initial=labeled, seed=seed).cpu()
    unlabeled = _unlabeled(len(split), labeled)
    rows = unlabeled.to(split.inputs.device)
    scorer = OUTPUT_SCORERS[score]()
    scored = score_dataset(model, split.inputs[rows], None, {score: scorer}, progress=False)
    priority = keep_priority(scored.scores[score], SCORE_DIRECTIONS[score])
    return unlabeled[torch.topk(priority, k).indices]


def _select(
    strategy, split, labeled, target: Fitted | None, cfg, seed, device
) -> tuple[Tensor, float]:
    """The next labels and the seconds selecting them took (selector training included)."""
    svp, active = cfg
    selector, score = parse_strategy(strategy)
    k = active.round_size
    if selector == "random":
        unlabeled = _unlabeled(len(split), labeled)
        g = torch.Generator().manual_seed(derive_seed(seed, f"random-round-{labeled.numel()}"))
        return unlabeled[torch.randperm(unlabeled.numel(), generator=g)[:k]], 0.0
    if selector == "proxy":
        proxy_steps = max(1, active.min_steps * svp.proxy_epochs // svp.target_epochs)
        model_fit = _fit(
            svp.proxy(),
            split,
            labeled,
            proxy_steps,
            derive_seed(seed, "al-proxy"),
            device,
            svp.progress,
        )
    else:
        model_fit = target
    sync(device)
    start = time.perf_counter()
    picks = _pick(model_fit.model, split, labeled, score, k, derive_seed(seed, "al-kcenter"))
    sync(device)
    return picks, model_fit.seconds + time.perf_counter() - start


def _labeled_store(out: Path, seed: int, strategy: str, rnd: int) -> Path:
    return out / "labeled" / f"seed{seed}" / strategy.replace(":", "-") / f"round{rnd}"


def _save_labeled(path: Path, labeled: Tensor, split: FmnistSplit, strategy: str) -> None:
    save_selection(
        path,
        labeled,
        policy=strategy,
        n_total=len(split),
        fingerprint=split.fingerprint,
        budget=int(labeled.numel()),
    )


def _run_strategy(out, split, strategy, seed, seed_set, cfg, device, results) -> None:
    svp, active = cfg
    labeled = seed_set
    for rnd in range(active.rounds + 1):
        store = _labeled_store(out, seed, strategy, rnd)
        if (store / "manifest.json").exists():
            labeled = load_selection(store, fingerprint=split.fingerprint).ids
        else:
            _save_labeled(store, labeled, split, strategy)
        key = f"seed{seed}/{strategy}/round{rnd}"
        last = rnd == active.rounds
        next_store = _labeled_store(out, seed, strategy, rnd + 1)
        if results.get(key) is not None and (last or (next_store / "manifest.json").exists()):
            continue
        target = _fit(
            svp.target(),
            split,
            labeled,
            active.min_steps,
            derive_seed(seed, f"al-target-{rnd}"),
            device,
            svp.progress,
        )
        row = {
            "seed": seed,
            "strategy": strategy,
            "round": rnd,
            "labels": int(labeled.numel()),
            "test_acc": accuracy(target.model, split.test_inputs, split.test_labels),
            "target_train_seconds": target.seconds,
            "selection_seconds": None,
        }
        if not last:
            picks, row["selection_seconds"] = _select(
                strategy, split, labeled, target, cfg, seed, device
            )
            _save_labeled(next_store, torch.cat([labeled, picks]), split, strategy)
        if results.get(key) is None:
            results.add({"key": key, **row})


def run_svp_active(out: Path, svp: SvpConfig, active: ActiveConfig) -> dict:
    """Run the scenario into ``out`` (resuming what an earlier run there finished)."""
    device = resolve_device(svp.device)
    split = load_split(device, svp.pool_size)
    check_active_options(active, len(split))
    check_same_run(out, svp, active)
    (out / "config.json").write_text(
        json.dumps({"svp": asdict(svp), "active": asdict(active)}, indent=2) + "\n"
    )
    results = Results(out / "results.jsonl")
    for seed in range(svp.seeds):
        g = torch.Generator().manual_seed(derive_seed(seed, "al-seed-set"))
        seed_set = torch.randperm(len(split), generator=g)[: active.initial]
        for strategy in active.strategies:
            _run_strategy(out, split, strategy, seed, seed_set, (svp, active), device, results)
    rows = [
        r
        for r in results.rows.values()
        if r["seed"] < svp.seeds
        and r["strategy"] in active.strategies
        and r["round"] <= active.rounds
    ]
    summary = active_summary(rows)
    summary["config"] = {"svp": asdict(svp), "active": asdict(active)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_active_report(out, summary)
    return summary
