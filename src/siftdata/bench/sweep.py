"""Running the noisy-fmnist scenario: every method side by side with uniform, over seeds and budgets.

A *budget sweep* trains every method, uniform included, at each fraction of ``--steps`` in
``budgets``, each run with its learning-rate schedule decayed to its own length; the summary's
``budget_sweep`` section then gives each method's compute multiplier against uniform's budget
curve (``siftdata.bench.budget``). With one budget the run is the classic side-by-side comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from torch import nn

from .._config import check_float_field, check_int_field, option
from .._seeding import derive_seed
from ..distributed import World, leader_first
from ..online import SelectionConfig, build_method, parse_method
from ..training.loop import TrainConfig, TrainResult, train
from .common import resolve_device, seeded_model, selection_log_for
from .noisy_fmnist import NUM_CLASSES, NoisyFmnistConfig, prepare_data, reference_for, train_data
from .protocol import run_scenario

__all__ = [
    "SweepConfig",
    "check_options",
    "check_budgets",
    "NoisyFmnistScenario",
    "run_noisy_fmnist",
    "train_single",
]


def _unique(values: tuple, name: str) -> tuple:
    repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
    if repeated:
        raise ValueError(f"{name} lists {', '.join(map(str, repeated))} more than once")
    return values


@dataclass
class SweepConfig:
    """Which methods, seeds and budgets ``bench`` runs."""

    methods: tuple[str, ...] = option(
        ("uniform", "learnability"), "comma-separated methods; uniform is always run"
    )
    seeds: int = option(2, "number of seeds (run s uses seed + s)")
    budgets: tuple[float, ...] = option(
        (1.0,),
        "comma-separated fractions of --steps; every method trains at each, with its LR schedule "
        "decayed to that budget (use with --schedule cosine or linear)",
    )
    uniform_budgets: tuple[float, ...] = option(
        (), "extra budgets for uniform alone, e.g. 2 to bound multipliers above its largest budget"
    )

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        if not self.methods:
            raise ValueError("methods must name at least one method")
        for name in _unique(self.methods, "methods"):
            self.check_method(name)  # a clear ValueError for an unknown name
        if "uniform" not in self.methods:
            self.methods = ("uniform", *self.methods)
        check_int_field(self.seeds, "seeds", low=1)
        self.budgets = tuple(_unique(tuple(self.budgets), "budgets"))
        if not self.budgets:
            raise ValueError("budgets must list at least one fraction")
        self.uniform_budgets = tuple(_unique(tuple(self.uniform_budgets), "uniform_budgets"))
        for b in (*self.budgets, *self.uniform_budgets):
            check_float_field(b, "each budget", low=0.0, low_open=True)
        if set(self.budgets) & set(self.uniform_budgets):
            raise ValueError("uniform_budgets repeats a value of budgets")

    @staticmethod
    def check_method(name: str) -> None:
        """Raise ``ValueError`` for a name the scenario does not know."""
        parse_method(name)

    def runs(self, method: str) -> tuple[float, ...]:
        """The budgets ``method`` is trained at."""
        extra = self.uniform_budgets if method == "uniform" else ()
        return tuple(sorted((*self.budgets, *extra)))


def check_options(
    scenario: NoisyFmnistConfig,
    train_cfg: TrainConfig,
    methods: tuple[str, ...],
    budgets=(1.0,),
    selection: SelectionConfig | None = None,
    selecting_budgets=None,
) -> None:
    """Checks across option groups, before any data is loaded, reference trained or run folder
    claimed (so a corrected command can use the same ``--out``)."""
    selecting = [m for m in methods if parse_method(m).selects]
    big_b = train_cfg.super_batch_size(selects=bool(selecting), name=", ".join(selecting))
    if big_b > scenario.pool_size:
        raise ValueError(
            f"the super-batch ({big_b}) is larger than the pool ({scenario.pool_size})"
        )
    check_budgets(train_cfg, budgets)
    shortest = min(round(b * train_cfg.steps) for b in (selecting_budgets or budgets))
    if selecting and selection is not None and selection.uniform_steps >= shortest:
        raise ValueError(
            f"uniform_steps ({selection.uniform_steps}) must be below steps ({shortest}, the "
            f"shortest run): {', '.join(selecting)} would train uniformly throughout and never "
            "select; lower --uniform-steps"
        )


def check_budgets(train_cfg: TrainConfig, budgets) -> None:
    """A sweep needs a decayed schedule, and every budget at least one step past the warm-up."""
    if len(budgets) > 1 and train_cfg.schedule == "constant":
        raise ValueError(
            "a budget sweep needs a learning rate decayed to each budget (--schedule cosine or "
            "linear); with a constant one every budget is a prefix of the same run"
        )
    shortest = min(round(b * train_cfg.steps) for b in budgets)
    if shortest < 1:
        raise ValueError(f"the smallest budget gives {shortest} steps; raise --steps or the budget")
    if train_cfg.warmup_steps >= shortest:
        raise ValueError(
            f"warmup_steps ({train_cfg.warmup_steps}) must be shorter than the shortest run "
            f"({shortest} steps)"
        )


def _learner(name: str, seed: int, d: dict, ref, scenario, selection, super_batch_factor):
    """The method (its selector seeded for this run), a fresh learner, and the reference cost."""
    device = resolve_device(scenario.device)
    spec = parse_method(name)
    method = build_method(
        spec,
        config=selection,
        reference=ref.table if spec.uses_reference else None,
        example_ids=len(d["pool_y"]),
        num_classes=NUM_CLASSES,
        super_batch_factor=super_batch_factor,
        seed=derive_seed(seed, "selector"),
        device=device,
    )
    model = seeded_model(scenario.model, seed=derive_seed(seed, "learner-init"), device=device)
    return method, model, (ref.cost if spec.uses_reference else None)


def _run_one(
    name, seed, budget, d, ref, scenario, train_cfg, selection, checkpoint, world=None
) -> list[dict]:
    method, model, cost = _learner(
        name, seed, d, ref, scenario, selection, train_cfg.super_batch_factor
    )
    world = world or World()
    if world.distributed:
        model = _data_parallel(model)
    config = replace(train_cfg, steps=round(budget * train_cfg.steps), seed=seed)
    tags = {"budget": budget, "steps_budget": config.steps, "base_steps": train_cfg.steps}
    data = train_data(d)
    ckpt = {"checkpoint_path": checkpoint, "selection_log": selection_log_for(checkpoint, config)}
    return train(
        model, method, data, config, reference_cost=cost, tags=tags, world=world, **ckpt
    ).records


@dataclass
class NoisyFmnistScenario:
    """The noisy-fmnist scenario under the protocol of :mod:`siftdata.bench.protocol`."""

    scenario: NoisyFmnistConfig
    sweep: SweepConfig
    train_cfg: TrainConfig
    selection: SelectionConfig
    name: str = "noisy-fmnist"
    world: World = field(default_factory=World)
    """The ranks sharing each run (under torchrun); rank 0 builds the reference cache first."""
    data: dict | None = field(default=None, init=False, repr=False)
    ref: object = field(default=None, init=False, repr=False)

    def config(self) -> dict:
        return {
            "scenario": asdict(self.scenario),
            "sweep": asdict(self.sweep),
            "train": asdict(self.train_cfg),
            "selection": asdict(self.selection),
        }

    def check(self) -> None:
        budgets = (*self.sweep.budgets, *self.sweep.uniform_budgets)
        check_options(
            self.scenario,
            self.train_cfg,
            self.sweep.methods,
            budgets,
            self.selection,
            selecting_budgets=self.sweep.budgets,
        )

    def prepare(self, out: Path) -> None:
        self.data = prepare_data(self.scenario, self.train_cfg.seed)
        if any(parse_method(m).uses_reference for m in self.sweep.methods):
            with leader_first(self.world):  # rank 0 trains and caches it, the others load it
                self.ref = reference_for(
                    self.scenario,
                    self.data,
                    out,
                    seed=self.train_cfg.seed,
                    progress=self.train_cfg.progress and self.world.rank == 0,
                )

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
            checkpoint,
            self.world,
        )

    def extras(self, records: list[dict]) -> dict:
        if self.ref is None:
            return {}
        ref = self.ref
        return {
            "reference": {**ref.info, **asdict(ref.cost), **_reference_separation(ref, self.data)}
        }


def run_noisy_fmnist(
    out: Path,
    *,
    scenario: NoisyFmnistConfig,
    sweep: SweepConfig,
    train_cfg: TrainConfig,
    selection: SelectionConfig,
    world: World | None = None,
) -> dict:
    """Run every (seed, method, budget); write ``config.json``, ``metrics.jsonl`` (after each run)
    and ``summary.json`` into ``out``; return the summary. On several ranks (``world``) each run
    is shared by all of them, with one global selection, and rank 0 writes."""
    world = world or World()
    bench = NoisyFmnistScenario(scenario, sweep, train_cfg, selection, world=world)
    return run_scenario(out, bench, sweep, train_cfg, lead=world.rank == 0)


def _reference_separation(ref, d: dict) -> dict:
    """How well the reference separates corrupted labels: its mean loss on each group."""
    losses, bad = ref.table.scores, d["is_corrupted"]
    return {
        "reference_loss_corrupted": float(losses[bad].mean()) if bad.any() else None,
        "reference_loss_clean": float(losses[~bad].mean()),
    }


def train_single(
    out: Path,
    *,
    method: str,
    scenario: NoisyFmnistConfig,
    train_cfg: TrainConfig,
    selection: SelectionConfig,
    world: World | None = None,
) -> TrainResult:
    """One method, one seed, resumable from ``out/checkpoint.pt``.

    Re-running the same command after an interruption continues where it stopped; the reference
    cache in ``out`` is reused. A checkpoint from other options is refused, naming them. On
    several ranks (``world``) rank 0 builds the reference cache while the others wait, every rank
    loads it, and they train one ``DistributedDataParallel`` learner with one global selection.
    """
    world = world or World()
    check_options(scenario, train_cfg, (method,), selection=selection)
    d = prepare_data(scenario, train_cfg.seed)
    ref = None
    if parse_method(method).uses_reference:
        with leader_first(world):
            progress = train_cfg.progress and world.rank == 0
            ref = reference_for(scenario, d, out, seed=train_cfg.seed, progress=progress)
    built, model, cost = _learner(
        method, train_cfg.seed, d, ref, scenario, selection, train_cfg.super_batch_factor
    )
    if world.distributed:
        model = _data_parallel(model)
    identity = {"scenario": {k: v for k, v in asdict(scenario).items() if k != "device"}}
    identity["selection"] = asdict(selection)
    tags = {"budget": 1.0, "steps_budget": train_cfg.steps, "base_steps": train_cfg.steps}
    return train(
        model,
        built,
        train_data(d),
        train_cfg,
        reference_cost=cost,
        tags=tags,
        identity=identity,
        metrics_path=out / "metrics.jsonl",
        checkpoint_path=out / "checkpoint.pt",
        world=world,
        selection_log=out / "selections" if train_cfg.record_selections else None,
    )


def _data_parallel(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` on its device (a GPU each, or the CPU)."""
    device = next(model.parameters()).device
    ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
