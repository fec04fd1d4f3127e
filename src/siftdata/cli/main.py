"""The ``siftdata`` command: ``demo``, ``train``, ``bench``, ``score``, ``select`` and ``report``.

Every option of ``train`` and ``bench`` comes from a config dataclass (its default and help are
written there once) and is validated before any data is loaded or any reference trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench.noisy_fmnist import NoisyFmnistConfig
from ..bench.sweep import SweepConfig, check_options
from ..distributed import join_from_environment
from ..online import SelectionConfig, parse_method
from ..training.loop import TrainConfig
from ._args import add_config_options, config_from_args
from .bench_commands import add_bench_parsers, add_run_options, print_summary, run_bench
from .ranks import check_one_process, open_run_on_ranks
from .run_folders import add_out, open_run

__all__ = ["main", "build_parser", "DEMO_STEPS", "DEMO_METHODS"]

DEMO_STEPS = 4000  # the base budget; uniform also runs 2x, where it memorises the 40% noise
DEMO_METHODS = ("uniform", "learnability", "learnability+stale")
DEMO_BUDGETS, DEMO_UNIFORM_BUDGETS = (0.25, 0.5, 1.0), (2.0,)
DEMO_SCHEDULE = "cosine"  # every run's LR decayed to its own budget: a fair comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siftdata", description="Choose which examples to train on."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo_parser(sub)
    add_bench_parsers(
        sub.add_parser("bench", help="run a benchmark scenario (see docs/benchmarks.md)")
    )
    _add_svp_command_parsers(sub)
    tr = sub.add_parser("train", help="train one method on noisy Fashion-MNIST, resumable")
    tr.add_argument("--method", default="learnability", help="the method (default learnability)")
    add_out(tr, None)
    add_run_options(tr, bench=False)
    _add_report_parser(sub)
    return parser


def _add_demo_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="noisy Fashion-MNIST (40%% noise): a budget sweep of uniform vs learnability, "
        "~2 minutes",
    )
    add_out(demo, "runs/demo")
    add_config_options(
        demo, TrainConfig, include=("steps", "progress"), defaults={"steps": DEMO_STEPS}
    )
    add_config_options(demo, NoisyFmnistConfig, include=("device",))


def _add_svp_command_parsers(sub) -> None:
    """``score`` (a proxy ranks the data) and ``select`` (a core-set of a score store)."""
    from .svp_commands import ScoreConfig, SelectConfig

    score = sub.add_parser(
        "score",
        help="rank Fashion-MNIST with a cheap proxy: one score store per score (resumable)",
    )
    add_out(score, None)
    add_config_options(score, ScoreConfig)
    select = sub.add_parser("select", help="keep a core-set of a score store: a selection store")
    select.add_argument("store", type=Path, help="a score store written by `siftdata score`")
    select.add_argument("--out", required=True, help="the selection store to write")
    select.add_argument(
        "--overwrite", action="store_true", help="replace the selection store at --out"
    )
    add_config_options(select, SelectConfig)


def _add_report_parser(sub) -> None:
    rep = sub.add_parser("report", help="write report.md and PNG plots for a bench or train folder")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--no-plots", action="store_true", help="only the markdown tables")
    rep.add_argument(
        "--methods",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=None,
        help="comma-separated subset to show (default all)",
    )


def _demo(args: argparse.Namespace) -> int:
    from ..bench.sweep import run_noisy_fmnist

    sweep = SweepConfig(
        methods=DEMO_METHODS, seeds=1, budgets=DEMO_BUDGETS, uniform_budgets=DEMO_UNIFORM_BUDGETS
    )
    configs = {
        "sweep": sweep,
        "scenario": config_from_args(NoisyFmnistConfig, args, noise=0.4),
        "train_cfg": config_from_args(TrainConfig, args, schedule=DEMO_SCHEDULE),
        "selection": SelectionConfig(),
    }
    budgets = (*DEMO_BUDGETS, *DEMO_UNIFORM_BUDGETS)
    check_options(configs["scenario"], configs["train_cfg"], DEMO_METHODS, budgets)
    print(
        f"siftdata demo: Fashion-MNIST, 40% label noise, MLP; {' vs '.join(DEMO_METHODS)}; "
        f"a budget sweep over {', '.join(str(round(b * args.steps)) for b in DEMO_BUDGETS)} steps "
        f"(uniform also {round(DEMO_UNIFORM_BUDGETS[0] * args.steps)}), each with its own cosine LR"
    )
    with open_run(args, "demo", configs) as out:
        run_noisy_fmnist(out, **configs)
        print_summary(out)
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..bench.sweep import train_single

    configs = {
        "scenario": config_from_args(NoisyFmnistConfig, args),
        "train_cfg": config_from_args(TrainConfig, args),
        "selection": config_from_args(SelectionConfig, args),
    }
    parse_method(args.method)
    check_options(
        configs["scenario"], configs["train_cfg"], (args.method,), selection=configs["selection"]
    )
    additive = ("steps",) if configs["train_cfg"].schedule == "constant" else ()
    world = join_from_environment()  # several ranks under torchrun
    options = {"method": args.method, **configs}
    with open_run_on_ranks(args, "train", options, additive, world) as out:
        result = train_single(out, method=args.method, world=world, **configs)
    if world.rank != 0:
        return 0
    last = result.records[-1]
    print(
        f"step {last['step']}: clean test accuracy {last['test_acc']:.4f}; "
        f"metrics in {out / 'metrics.jsonl'} (siftdata report {out})"
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    from .svp_commands import SCORE_ADDITIVE, ScoreConfig, check_engine, run_score

    cfg = config_from_args(ScoreConfig, args)
    world = join_from_environment()  # several ranks under torchrun: each scores a share
    check_engine(cfg, world)  # before the folder is claimed
    with open_run_on_ranks(args, "score", {"score": cfg}, SCORE_ADDITIVE, world) as out:
        seconds = run_score(out, cfg, world)
    if world.rank != 0:
        return 0
    for name, stages in seconds.items():
        cells = ", ".join(f"{stage} {value:.1f} s" for stage, value in stages.items())
        print(f"{name}: {out / name} ({cells})")
    return 0


def _select(args: argparse.Namespace) -> int:
    from .svp_commands import SelectConfig, run_select

    cfg = config_from_args(SelectConfig, args)
    result = run_select(args.store, Path(args.out), cfg, overwrite=args.overwrite)
    print(
        f"kept {result['size']} of {result['of']} examples by {result['score']}: {result['path']}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..bench.report import write_report
    from ..bench.svp_report import rewrite_svp_report

    path = rewrite_svp_report(args.run_dir) or write_report(
        args.run_dir, plots=not args.no_plots, methods=args.methods
    )
    print(path.read_text())
    print(f"report: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "demo": _demo,
        "bench": run_bench,
        "train": _train,
        "score": _score,
        "select": _select,
        "report": _report,
    }
    try:
        check_one_process(args)
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"siftdata {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # permission denied, read-only folder, disk full: one line, the path
        where = f"{err.filename}: " if err.filename else ""
        print(f"siftdata {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.command not in ("select", "report")
        hint = "; re-run the same command to resume" if resumable else ""
        print(f"siftdata {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
