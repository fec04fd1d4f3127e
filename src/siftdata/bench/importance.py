"""Scenario ``importance``: unbiased selection on Fashion-MNIST, side by side with uniform.

Methods: ``uniform``, ``importance`` (sampling ∝ the gradient-norm bound behind its τ gate),
``learnability-unbiased``, ``selective-backprop``, any other named method, and ``infobatch``
(uniform training through the epoch-pruning :class:`~siftdata.online.infobatch.InfoBatchSource`). Every run
is a budget of ``--steps``, its learning rate decayed to its own length; ``infobatch`` trains the
same number of *epochs* as uniform at that budget, in the fewer steps its pruned epochs take
(announced before training, so its schedule is sized to them). The records add the loss and
accuracy on a fixed subset of the (noisy) pool, for training-loss curves; the summary adds
passes saved, accuracy at uniform's wall-clock, time to uniform's final training loss, τ's trace,
and checks on one fixed model (:mod:`siftdata.bench.importance_checks`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .._config import check_float_field, check_int_field, option
from .._files import atomic_write
from .._seeding import derive_seed
from ..models.evaluation import evaluate
from ..online import SelectionConfig, parse_method
from ..online.infobatch import InfoBatchSource
from ..training.loop import TrainConfig, train
from ..training.recorder import ClassificationEvaluator
from .common import resolve_device, seeded_model, selection_log_for
from .importance_checks import fixed_model_checks, importance_summary
from .noisy_fmnist import NoisyFmnistConfig, prepare_data, reference_for, train_data
from .protocol import run_scenario
from .sweep import SweepConfig, _learner, check_options

__all__ = [
    "INFOBATCH",
    "ImportanceScenario",
    "ImportanceSweepConfig",
    "PruningConfig",
    "SCENARIO_DEFAULTS",
    "check_importance_options",
    "run_importance",
]

INFOBATCH = "infobatch"
SCENARIO_DEFAULTS = {"noise": 0.0, "model": "cnn"}
"""The scenario's own defaults for the shared data options (clean data, the CNN)."""


@dataclass
class ImportanceSweepConfig(SweepConfig):
    """Methods, seeds and budgets of the ``importance`` scenario."""

    methods: tuple[str, ...] = option(
        ("uniform", "importance", "learnability-unbiased", INFOBATCH, "selective-backprop"),
        "comma-separated methods (named methods and infobatch); uniform is always run",
    )

    @staticmethod
    def check_method(name: str) -> None:
        if name != INFOBATCH:
            parse_method(name)


@dataclass
class PruningConfig:
    """InfoBatch's options, and the scenario's extra measurements."""

    prune_ratio: float = option(0.5, "infobatch drops this share of the well-learned examples")
    delta: float = option(0.875, "infobatch prunes in this share of the epochs, then serves all")
    low_share: float = option(0.5, "infobatch's well-learned set: this share of lowest losses")
    pool_eval_size: int = option(10_000, "pool examples whose loss is recorded (training loss)")
    probe_size: int = option(512, "super-batch of the fixed-model checks (per-example gradients)")

    def __post_init__(self) -> None:
        check_float_field(self.prune_ratio, "prune_ratio", low=0.0, low_open=True, high=0.999)
        check_float_field(self.delta, "delta", low=0.0, low_open=True, high=1.0)
        check_float_field(self.low_share, "low_share", low=0.0, low_open=True, high=0.999)
        check_int_field(self.pool_eval_size, "pool_eval_size", low=1)
        check_int_field(self.probe_size, "probe_size", low=2)


def _uses_reference(name: str) -> bool:
    return name != INFOBATCH and parse_method(name).uses_reference


def check_importance_options(
    scenario, train_cfg: TrainConfig, sweep, pruning, selection=None
) -> None:
    """Checks across option groups, before any data is loaded or reference trained."""
    named = tuple(m for m in sweep.methods if m != INFOBATCH)  # infobatch trains as uniform
    budgets = (*sweep.budgets, *sweep.uniform_budgets)
    check_options(scenario, train_cfg, named, budgets, selection, selecting_budgets=sweep.budgets)
    for name in ("pool_eval_size", "probe_size"):
        if getattr(pruning, name) > scenario.pool_size:
            raise ValueError(f"{name} exceeds the pool ({scenario.pool_size})")
    if INFOBATCH in sweep.methods:
        for budget in sweep.budgets:
            _infobatch_epochs(round(budget * train_cfg.steps), train_cfg.batch_size, scenario)


def _infobatch_epochs(steps: int, batch: int, scenario) -> int:
    """The epochs uniform covers in ``steps`` (rounded), which infobatch then trains."""
    epochs = round(steps * batch / scenario.pool_size)
    if epochs < 2:
        raise ValueError(
            f"{steps} steps of {batch} are {steps * batch / scenario.pool_size:.2f} epochs of the "
            "pool; infobatch needs at least 2 (epoch 0 is never pruned): raise --steps"
        )
    return epochs


class PoolAndTestEvaluator:
    """Test accuracy and loss, plus loss and accuracy on a fixed subset of the training pool."""

    def __init__(self, d: dict, positions: torch.Tensor, device, batch_size: int) -> None:
        self.test = ClassificationEvaluator(
            d["test_x"].to(device), d["test_y"].to(device), batch_size=batch_size
        )
        self.x = d["pool_x"].index_select(0, positions).to(device)
        self.y = d["pool_y"].index_select(0, positions).to(device)
        self.batch_size = batch_size

    def __call__(self, model) -> dict[str, float]:
        pool = evaluate(model, self.x, self.y, batch_size=self.batch_size)
        return {**self.test(model), "pool_loss": pool["test_loss"], "pool_acc": pool["test_acc"]}


class _Runs:
    """One run of the sweep; keeps the base seed's uniform learner for the fixed-model checks."""

    def __init__(self, d, ref, scenario, train_cfg, selection, pruning, top: float) -> None:
        self.d, self.ref, self.scenario, self.top = d, ref, scenario, top
        self.train_cfg, self.selection, self.pruning = train_cfg, selection, pruning
        self.device = resolve_device(scenario.device)
        g = torch.Generator().manual_seed(derive_seed(train_cfg.seed, "pool-eval-subset"))
        subset = torch.randperm(len(d["pool_y"]), generator=g)[: pruning.pool_eval_size]
        self.evaluator = PoolAndTestEvaluator(d, subset, self.device, train_cfg.eval_batch_size)
        self.kept_model, self.kept_path = None, None

    def __call__(self, name: str, seed: int, budget: float, checkpoint=None) -> list[dict]:
        cfg, steps = self.train_cfg, round(budget * self.train_cfg.steps)
        source, tags = None, {"budget": budget, "base_steps": cfg.steps}
        if name == INFOBATCH:
            epochs = _infobatch_epochs(steps, cfg.batch_size, self.scenario)
            source = self._infobatch(epochs, seed)
            steps = source.total_steps(cfg.batch_size)
            tags.update(epochs=epochs, announced_passes_saved=source.passes_saved())
        method, model, cost = _learner(
            "uniform" if name == INFOBATCH else name,
            seed,
            self.d,
            self.ref,
            self.scenario,
            self.selection,
            cfg.super_batch_factor,
        )
        method.name = name  # infobatch: uniform's method through the pruning source
        config = replace(cfg, steps=steps, seed=seed)
        tags["steps_budget"] = steps
        result = train(
            model,
            method,
            train_data(self.d),
            config,
            source=source,
            evaluator=self.evaluator,
            reference_cost=cost,
            tags=tags,
            checkpoint_path=checkpoint,
            selection_log=selection_log_for(checkpoint, config),
        )
        if name == "uniform" and seed == cfg.seed and budget == self.top:
            self.kept_model = model
            if self.kept_path is not None:  # a resumed sweep that skips this run reloads it
                atomic_write(
                    self.kept_path, lambda f: torch.save(model.state_dict(), f), binary=True
                )
        return result.records

    def kept_uniform_model(self):
        """The base seed's uniform learner at the top budget: this sweep's, or a saved one."""
        if self.kept_model is None and self.kept_path is not None and self.kept_path.exists():
            model = seeded_model(self.scenario.model, seed=0, device=self.device)
            model.load_state_dict(torch.load(self.kept_path, map_location=self.device))
            self.kept_model = model
        return self.kept_model

    def _infobatch(self, epochs: int, seed: int) -> InfoBatchSource:
        p = self.pruning
        return InfoBatchSource(
            len(self.d["pool_y"]),
            epochs=epochs,
            prune_ratio=p.prune_ratio,
            delta=p.delta,
            low_share=p.low_share,
            seed=derive_seed(seed, "infobatch"),
            device=self.device,
        )


@dataclass
class ImportanceScenario:
    """The importance scenario under the protocol of :mod:`siftdata.bench.protocol`."""

    scenario: NoisyFmnistConfig
    sweep: ImportanceSweepConfig
    train_cfg: TrainConfig
    selection: SelectionConfig
    pruning: PruningConfig
    name: str = "importance"
    runs: _Runs | None = field(default=None, init=False, repr=False)

    def config(self) -> dict:
        return {
            "scenario": asdict(self.scenario),
            "sweep": asdict(self.sweep),
            "train": asdict(self.train_cfg),
            "selection": asdict(self.selection),
            "pruning": asdict(self.pruning),
        }

    def check(self) -> None:
        check_importance_options(
            self.scenario, self.train_cfg, self.sweep, self.pruning, self.selection
        )

    def prepare(self, out: Path) -> None:
        cfg = self.train_cfg
        d = prepare_data(self.scenario, cfg.seed)
        ref = None
        if any(_uses_reference(m) for m in self.sweep.methods):
            ref = reference_for(self.scenario, d, out, seed=cfg.seed, progress=cfg.progress)
        top = max(self.sweep.budgets)
        self.runs = _Runs(d, ref, self.scenario, cfg, self.selection, self.pruning, top)
        self.runs.kept_path = out / "fixed_model_uniform.pt"

    def run_one(self, method: str, seed: int, budget: float, *, checkpoint=None) -> list[dict]:
        return self.runs(method, seed, budget, checkpoint)

    def extras(self, records: list[dict]) -> dict:
        runs = self.runs
        found = {"unbiased": importance_summary(records, methods=list(self.sweep.methods))}
        kept = runs.kept_uniform_model()
        if kept is not None:
            found["fixed_model"] = fixed_model_checks(
                kept,
                runs.d,
                runs.ref.table if runs.ref is not None else None,
                probe_size=self.pruning.probe_size,
                batch_size=self.train_cfg.batch_size,
                selection=self.selection,
                seed=self.train_cfg.seed,
            )
        return found


def run_importance(
    out: Path,
    *,
    scenario: NoisyFmnistConfig,
    sweep: ImportanceSweepConfig,
    train_cfg: TrainConfig,
    selection: SelectionConfig,
    pruning: PruningConfig,
) -> dict:
    """Run every (seed, method, budget); write ``config.json``, ``metrics.jsonl`` and
    ``summary.json`` into ``out``; return the summary."""
    found = ImportanceScenario(scenario, sweep, train_cfg, selection, pruning)
    return run_scenario(out, found, sweep, train_cfg)
