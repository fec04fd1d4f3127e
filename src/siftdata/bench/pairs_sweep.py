"""Running the pairs-fmnist scenario: JEST and its baselines side by side with uniform.

The same sweep as noisy-fmnist (:mod:`siftdata.bench.sweep`): every (seed, method, budget) is its
own run with its LR schedule decayed to its budget, and the summary carries the target-based
table and the budget sweep's compute multipliers. Added here: the share of mismatched pairs among
the selected (the records' ``mislabeled_selected``), and for every final learner the rank
agreement (Spearman) between its low- and full-resolution learnability scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .._config import check_float_field, option
from .._modes import eval_mode
from .._seeding import derive_seed
from ..core.pairwise import EmbeddingPairScores, per_example_sigmoid_loss
from ..core.rank_stats import spearman
from ..data.pairs import PairsData
from ..online.approximation import LowResolution
from ..online.pair_methods import (
    PairSelectionConfig,
    build_pair_method,
    check_pair_method,
    pair_method_uses_reference,
)
from ..reference.pair_training import siglip_optimizer
from ..training.loop import TrainConfig, train
from .common import resolve_device, selection_log_for
from .pairs_fmnist import (
    PairsFmnistConfig,
    pair_evaluator,
    pair_reference_for,
    pairs_train_data,
    prepare_pairs,
    seeded_two_tower,
)
from .protocol import run_scenario
from .sweep import SweepConfig, check_budgets

__all__ = [
    "PairSweepConfig",
    "PairsFmnistScenario",
    "spearman",
    "resolution_agreement",
    "run_pairs_fmnist",
]


@dataclass
class PairSweepConfig(SweepConfig):
    """Which pair methods, seeds and budgets ``bench pairs-fmnist`` runs, and the filter ratio."""

    methods: tuple[str, ...] = option(
        ("uniform", "learnability", "jest", "jest-flexi"),
        "comma-separated pair methods; uniform is always run",
    )
    filter_ratio: float = option(0.8, "share of each super-batch filtered out: B = b / (1 − f)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float_field(self.filter_ratio, "filter_ratio", low=0.0, high=0.99, low_open=True)

    @staticmethod
    def check_method(name: str) -> None:
        check_pair_method(name)

    def super_batch_factor(self) -> float:
        return 1.0 / (1.0 - self.filter_ratio)


def _learnability(learner, reference) -> torch.Tensor:
    return EmbeddingPairScores("learnability", learner=learner, reference=reference).diagonal()


@torch.no_grad()
def resolution_agreement(
    model,
    d: PairsData,
    reference,
    *,
    cheap: LowResolution,
    super_batch: int,
    batches: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman between cheap (``cheap``: low resolution, maybe early exit) and full scores of
    ``model`` on a few pool super-batches: the diagonal learnability ``S_ii`` and the per-pair
    learner loss, averaged over ``batches``."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    found: dict[str, list[float]] = {"learnability": [], "learner_loss": []}
    with eval_mode(model):
        for _ in range(batches):
            idx = torch.randperm(len(d.pool_labels), generator=g)[:super_batch]
            x = (d.pool_images[idx].to(device), d.pool_tokens[idx].to(device))
            ref = reference.lookup(idx.to(device))
            full, low = model(x), cheap(model, x)
            found["learnability"].append(
                spearman(_learnability(full, ref), _learnability(low, ref))
            )
            found["learner_loss"].append(
                spearman(per_example_sigmoid_loss(full), per_example_sigmoid_loss(low))
            )
    return {f"spearman_{k}": sum(v) / len(v) for k, v in found.items()}


def _run_one(name, seed, budget, d, ref, scenario, train_cfg, selection, device, checkpoint):
    method = build_pair_method(
        name,
        config=selection,
        reference=ref.table if ref is not None and pair_method_uses_reference(name) else None,
        seed=derive_seed(seed, "selector"),
        device=device,
    )
    model = seeded_two_tower(d, scenario, seed=derive_seed(seed, "learner-init"), device=device)
    config = replace(train_cfg, steps=round(budget * train_cfg.steps), seed=seed)
    tags = {"budget": budget, "steps_budget": config.steps, "base_steps": train_cfg.steps}
    uses_ref = pair_method_uses_reference(name)
    records = train(
        model,
        method,
        pairs_train_data(d),
        config,
        optimizer=siglip_optimizer(model, lr=config.lr, weight_decay=config.weight_decay),
        loss_fn=per_example_sigmoid_loss,
        evaluator=pair_evaluator(d, device),
        reference_cost=ref.cost if uses_ref else None,
        tags=tags,
        checkpoint_path=checkpoint,
        selection_log=selection_log_for(checkpoint, config),
    ).records
    if ref is not None:
        records[-1].update(
            resolution_agreement(
                model,
                d,
                ref.table,
                cheap=LowResolution(factor=selection.score_factor, early_exit=selection.early_exit),
                super_batch=config.super_batch_size(selects=True),
                seed=seed,
            )
        )
    return records


@dataclass
class PairsFmnistScenario:
    """The pairs-fmnist scenario under the protocol of :mod:`siftdata.bench.protocol`; the
    super-batch factor comes from the sweep's filter ratio."""

    scenario: PairsFmnistConfig
    sweep: PairSweepConfig
    train_cfg: TrainConfig
    selection: PairSelectionConfig
    name: str = "pairs-fmnist"
    data: PairsData | None = field(default=None, init=False, repr=False)
    ref: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        factor = self.sweep.super_batch_factor()
        self.train_cfg = replace(self.train_cfg, super_batch_factor=factor)

    def config(self) -> dict:
        return {
            "scenario": asdict(self.scenario),
            "sweep": asdict(self.sweep),
            "train": asdict(self.train_cfg),
            "selection": asdict(self.selection),
        }

    def check(self) -> None:
        check_pair_options(self.scenario, self.train_cfg, self.sweep, self.selection)

    def prepare(self, out: Path) -> None:
        seed, progress = self.train_cfg.seed, self.train_cfg.progress
        self.device = resolve_device(self.scenario.device)
        self.data = prepare_pairs(self.scenario, seed)
        self.ref = pair_reference_for(self.scenario, self.data, out, seed=seed, progress=progress)

    def run_one(self, method: str, seed: int, budget: float, *, checkpoint=None) -> list[dict]:
        return _run_one(
            method,
            seed,
            budget,
            self.data,
            self.ref,
            self.scenario,
            self.train_cfg,
            self.selection,
            self.device,
            checkpoint,
        )

    def extras(self, records: list[dict]) -> dict:
        return {
            "reference": {**self.ref.info, **asdict(self.ref.cost)},
            "resolution_agreement": _agreement(records, self.sweep),
        }


def run_pairs_fmnist(
    out: Path,
    *,
    scenario: PairsFmnistConfig,
    sweep: PairSweepConfig,
    train_cfg: TrainConfig,
    selection: PairSelectionConfig,
) -> dict:
    """Run every (seed, method, budget); write ``config.json``, ``metrics.jsonl`` (after each run)
    and ``summary.json`` into ``out``; return the summary."""
    pairs = PairsFmnistScenario(scenario, sweep, train_cfg, selection)
    return run_scenario(out, pairs, sweep, pairs.train_cfg)


def _agreement(records: list[dict], sweep: PairSweepConfig) -> dict:
    """Per method, the mean low-/full-resolution Spearman of its final learners at the top budget."""
    top, out = max(sweep.budgets), {}
    for name in sweep.methods:
        finals = [
            r
            for r in records
            if r["method"] == name and r["budget"] == top and "spearman_learnability" in r
        ]
        if finals:
            out[name] = {
                key: sum(r[key] for r in finals) / len(finals)
                for key in ("spearman_learnability", "spearman_learner_loss")
            }
    return out


def check_pair_options(
    scenario: PairsFmnistConfig,
    train_cfg: TrainConfig,
    sweep: PairSweepConfig,
    selection: PairSelectionConfig | None = None,
) -> None:
    """Checks across option groups, before any data is loaded or reference trained."""
    big_b = round(sweep.super_batch_factor() * train_cfg.batch_size)
    if big_b <= train_cfg.batch_size:
        raise ValueError(
            f"filter_ratio {sweep.filter_ratio} leaves nothing to filter at b = {train_cfg.batch_size}"
        )
    if big_b > scenario.pool_size:
        raise ValueError(
            f"the super-batch ({big_b}) is larger than the pool ({scenario.pool_size})"
        )
    if selection is not None and selection.chunks > train_cfg.batch_size:
        raise ValueError(
            f"chunks ({selection.chunks}) must not exceed the batch size ({train_cfg.batch_size}): "
            "every chunk holds at least one pair"
        )
    check_budgets(train_cfg, (*sweep.budgets, *sweep.uniform_budgets))
