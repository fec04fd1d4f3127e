"""``siftdata bench``: one sub-command per scenario, each with its option groups, run under the
scenario protocol (or the SVP benches' own), with the summary printed at the end."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from ..bench.noisy_fmnist import NoisyFmnistConfig
from ..bench.sweep import SweepConfig, check_options
from ..distributed import World, join_from_environment
from ..online import SelectionConfig
from ..training.loop import TrainConfig
from ._args import add_config_options, config_from_args
from .ranks import open_run_on_ranks
from .run_folders import SWEEP_ADDITIVE, add_out, open_run

__all__ = ["add_bench_parsers", "add_run_options", "print_summary", "run_bench"]


def add_run_options(p: argparse.ArgumentParser, *, bench: bool) -> None:
    if bench:
        add_config_options(p, SweepConfig)
    add_config_options(p, NoisyFmnistConfig)
    add_config_options(p, TrainConfig, exclude=("checkpoint_every",) if bench else ())
    add_config_options(p, SelectionConfig)


def _add_pair_options(p: argparse.ArgumentParser) -> None:
    from ..bench.pairs_fmnist import PairsFmnistConfig
    from ..bench.pairs_sweep import PairSweepConfig
    from ..online.pair_methods import PairSelectionConfig

    add_config_options(p, PairSweepConfig)
    add_config_options(p, PairsFmnistConfig)
    add_config_options(p, TrainConfig, exclude=("checkpoint_every", "super_batch_factor"))
    add_config_options(p, PairSelectionConfig)


def _add_importance_options(p: argparse.ArgumentParser) -> None:
    from ..bench.importance import SCENARIO_DEFAULTS, ImportanceSweepConfig, PruningConfig

    add_config_options(p, ImportanceSweepConfig)
    add_config_options(p, NoisyFmnistConfig, defaults=SCENARIO_DEFAULTS)
    add_config_options(p, TrainConfig, exclude=("checkpoint_every",))
    add_config_options(p, SelectionConfig)
    add_config_options(p, PruningConfig)


TEXT_TRAIN_DEFAULTS = {
    "steps": 2000,
    "batch_size": 32,
    "super_batch_factor": 4.0,
    "lr": 2e-3,
    "schedule": "cosine",
    "eval_every": 250,
}
"""noisy-text's training defaults: a few minutes a run on 2 cores."""


def _add_text_options(p: argparse.ArgumentParser) -> None:
    from ..bench.noisy_text import NoisyTextConfig
    from ..bench.text_runs import TEXT_METHODS

    add_config_options(p, SweepConfig, defaults={"methods": TEXT_METHODS})
    add_config_options(p, NoisyTextConfig)
    unused = ("checkpoint_every", "check_values", "record_selections", "eval_batch_size")
    add_config_options(p, TrainConfig, exclude=unused, defaults=TEXT_TRAIN_DEFAULTS)
    add_config_options(p, SelectionConfig, exclude=("local_shards",))


def _add_svp_options(p: argparse.ArgumentParser, scenario: type) -> None:
    from ..bench.svp import SvpConfig

    add_config_options(p, SvpConfig)
    add_config_options(p, scenario)


def add_bench_parsers(bench: argparse.ArgumentParser) -> None:
    """One sub-command per scenario, each with its option groups."""
    from ..bench.svp_active import ActiveConfig
    from ..bench.svp_coreset import CoresetConfig

    scenarios = bench.add_subparsers(dest="scenario", required=True)
    helps = {
        "noisy-fmnist": "noisy-label Fashion-MNIST: per-example selection methods",
        "pairs-fmnist": "Fashion-MNIST image-caption pairs: JEST and its baselines",
        "noisy-text": "noisy-label WordNet glosses → supersense, a tiny BERT trained through the "
        "Hugging Face Trainer (extra hf)",
        "importance": "Fashion-MNIST: importance sampling, unbiased learnability and InfoBatch "
        "vs uniform",
        "svp-coreset": "Fashion-MNIST: core-sets kept by a cheap proxy's scores vs all data vs "
        "random",
        "svp-active": "Fashion-MNIST: active learning, selecting with a proxy vs the target vs "
        "random",
    }
    add_options = {
        "noisy-fmnist": lambda p: add_run_options(p, bench=True),
        "pairs-fmnist": _add_pair_options,
        "noisy-text": _add_text_options,
        "importance": _add_importance_options,
        "svp-coreset": lambda p: _add_svp_options(p, CoresetConfig),
        "svp-active": lambda p: _add_svp_options(p, ActiveConfig),
    }
    for name, text in helps.items():
        scenario = scenarios.add_parser(name, help=text)
        add_out(scenario, None)
        add_options[name](scenario)


def print_summary(out: Path) -> None:
    from ..bench.report import format_budget_table, format_table, load_run, write_report

    _, summary = load_run(out)
    print(format_table(summary))
    if summary.get("budget_sweep"):
        print("\n" + format_budget_table(summary))
    print(f"\nreport: {write_report(out)}")


def _run_scenario(
    args: argparse.Namespace, classes: dict[str, type], check, run, world=None
) -> int:
    """Build each config group from ``args``, ``check(**configs)`` before any data is loaded,
    then ``run(out, **configs)`` in the claimed run folder and print the summary (rank 0)."""
    world = world or World()
    configs = {key: config_from_args(cls, args) for key, cls in classes.items()}
    check(**configs)
    command = f"bench {args.scenario}"
    with open_run_on_ranks(args, command, configs, SWEEP_ADDITIVE, world) as out:
        run(out, **configs)
        if world.rank == 0:
            print_summary(out)
    return 0


def _bench_pairs(args: argparse.Namespace) -> int:
    from ..bench.pairs_fmnist import PairsFmnistConfig
    from ..bench.pairs_sweep import PairSweepConfig, check_pair_options, run_pairs_fmnist
    from ..online.pair_methods import PairSelectionConfig

    classes = {
        "sweep": PairSweepConfig,
        "scenario": PairsFmnistConfig,
        "train_cfg": TrainConfig,
        "selection": PairSelectionConfig,
    }

    def check(sweep, scenario, train_cfg, selection):
        check_pair_options(scenario, train_cfg, sweep, selection)

    return _run_scenario(args, classes, check, run_pairs_fmnist)


def _bench_importance(args: argparse.Namespace) -> int:
    from ..bench.importance import (
        ImportanceSweepConfig,
        PruningConfig,
        check_importance_options,
        run_importance,
    )

    classes = {
        "sweep": ImportanceSweepConfig,
        "scenario": NoisyFmnistConfig,
        "train_cfg": TrainConfig,
        "selection": SelectionConfig,
        "pruning": PruningConfig,
    }

    def check(sweep, scenario, train_cfg, selection, pruning):
        check_importance_options(scenario, train_cfg, sweep, pruning, selection)

    return _run_scenario(args, classes, check, run_importance)


def _bench_text(args: argparse.Namespace) -> int:
    from ..bench.noisy_text import NoisyTextConfig
    from ..bench.text_runs import check_text_options, run_noisy_text

    classes = {
        "sweep": SweepConfig,
        "scenario": NoisyTextConfig,
        "train_cfg": TrainConfig,
        "selection": SelectionConfig,
    }

    def check(sweep, scenario, train_cfg, selection):
        check_text_options(scenario, train_cfg, sweep)

    return _run_scenario(args, classes, check, run_noisy_text)


def _bench_svp(args: argparse.Namespace) -> int:
    from ..bench.svp import ADDITIVE, SvpConfig
    from ..bench.svp_active import ActiveConfig, check_active_options, run_svp_active
    from ..bench.svp_coreset import CoresetConfig, check_coreset_options, run_svp_coreset

    svp = config_from_args(SvpConfig, args)
    if args.scenario == "svp-coreset":
        scenario = config_from_args(CoresetConfig, args)
        check_coreset_options(svp, scenario)
        run = run_svp_coreset
    else:
        scenario = config_from_args(ActiveConfig, args)
        check_active_options(scenario, svp.pool_size or 60000)
        run = run_svp_active
    configs = {"svp": svp, "scenario": scenario}
    with open_run(args, f"bench {args.scenario}", configs, ADDITIVE) as out:
        run(out, svp, scenario)
        print((out / "report.md").read_text())
        print(f"report: {out / 'report.md'}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    if args.scenario.startswith("svp-"):
        return _bench_svp(args)
    if args.scenario == "pairs-fmnist":
        return _bench_pairs(args)
    if args.scenario == "importance":
        return _bench_importance(args)
    if args.scenario == "noisy-text":
        return _bench_text(args)
    from ..bench.sweep import run_noisy_fmnist

    classes = {
        "sweep": SweepConfig,
        "scenario": NoisyFmnistConfig,
        "train_cfg": TrainConfig,
        "selection": SelectionConfig,
    }

    def check(sweep, scenario, train_cfg, selection):
        budgets = (*sweep.budgets, *sweep.uniform_budgets)
        check_options(
            scenario, train_cfg, sweep.methods, budgets, selection, selecting_budgets=sweep.budgets
        )

    world = join_from_environment()  # several ranks under torchrun
    run = functools.partial(run_noisy_fmnist, world=world)
    return _run_scenario(args, classes, check, run, world)
