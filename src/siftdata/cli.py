"""The ``siftdata`` command: ``demo``, ``train``, ``bench`` and ``report``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

DEMO_STEPS = 5000  # long enough for uniform to peak and start memorising the 40% noise
DEMO_METHODS = ("uniform", "learnability", "learnability+stale")


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() == "none" else float(text)


def _methods(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _add_scenario_flags(p: argparse.ArgumentParser, *, methods: str) -> None:
    p.add_argument(
        "--methods",
        type=_methods,
        default=_methods(methods),
        help=f"comma-separated (default {methods}); uniform is always run",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.4,
        help="symmetric label-noise rate in the pool (default 0.4)",
    )
    p.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        default="mlp",
        help="learner and reference architecture (default mlp)",
    )
    p.add_argument(
        "--steps", type=int, default=3000, help="learner update steps per run (default 3000)"
    )
    p.add_argument("--seeds", type=int, default=2, help="number of seeds (default 2)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--super-batch-factor", type=float, default=None, help="B/b (default: the scenario's, 10)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="b, examples per update (default 64)")
    p.add_argument(
        "--reference",
        choices=("clean-holdout", "noisy-holdout", "two-halves"),
        default="clean-holdout",
        help="how the reference model is trained (default clean-holdout)",
    )
    p.add_argument(
        "--eval-every", type=int, default=100, help="evaluation interval in steps (default 100)"
    )
    p.add_argument(
        "--reference-epochs",
        type=int,
        default=30,
        help="most epochs of reference training; early stopping usually ends it sooner (default 30)",
    )
    p.add_argument(
        "--temperature-scale",
        type=float,
        default=0.5,
        help="τ/std(scores) for sampled learnability (default 0.5)",
    )
    p.add_argument(
        "--learner-loss-cap",
        type=_optional_float,
        default=math.log(10),
        help="learnability clips the learner loss here; 'none' to not clip (default log 10)",
    )
    p.add_argument(
        "--reference-temperature",
        type=float,
        default=None,
        help="reference losses from logits / T (default 1 for clean-holdout, 1/3 otherwise)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<command>-<time>)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siftdata", description="Choose which examples to train on."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="noisy Fashion-MNIST (40%% noise): uniform vs learnability, ~2 minutes"
    )
    demo.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)"
    )
    demo.add_argument(
        "--steps", type=int, default=DEMO_STEPS, help=f"learner steps (default {DEMO_STEPS})"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    bench = sub.add_parser("bench", help="run a benchmark scenario (see shared/BENCHMARKS.md)")
    bench.add_argument("scenario", choices=("noisy-fmnist",))
    _add_scenario_flags(bench, methods="uniform,learnability")
    tr = sub.add_parser("train", help="train one method on noisy Fashion-MNIST, resumable")
    _add_scenario_flags(tr, methods="learnability")
    tr.add_argument(
        "--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)"
    )
    rep = sub.add_parser("report", help="write report.md and PNG plots for a run folder")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--no-plots", action="store_true", help="only the markdown table")
    rep.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help="comma-separated subset to show (default all)",
    )
    return parser


def _scenario_config(args: argparse.Namespace, **overrides):
    from .bench.noisy_fmnist import NoisyFmnistConfig

    fields = {
        "methods": args.methods,
        "noise": args.noise,
        "model": args.model,
        "steps": args.steps,
        "seeds": args.seeds,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "reference": args.reference,
        "eval_every": args.eval_every,
        "reference_epochs": args.reference_epochs,
        "temperature_scale": args.temperature_scale,
        "learner_loss_cap": args.learner_loss_cap,
        "reference_temperature": args.reference_temperature,
        "progress": not args.no_progress,
    }
    if args.super_batch_factor is not None:
        fields["super_batch_factor"] = args.super_batch_factor
    fields.update(overrides)
    return NoisyFmnistConfig(**fields)


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def _bench(args: argparse.Namespace) -> int:
    from .bench.noisy_fmnist import run_noisy_fmnist
    from .bench.report import format_table, write_report

    out = args.out or _default_out("bench")
    summary = run_noisy_fmnist(_scenario_config(args), out)
    print(format_table(summary))
    print(f"\nreport: {write_report(out)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .bench.noisy_fmnist import NoisyFmnistConfig, run_noisy_fmnist
    from .bench.report import format_table, write_report

    cfg = NoisyFmnistConfig(
        methods=DEMO_METHODS,
        noise=0.4,
        steps=args.steps,
        seeds=1,
        progress=not args.no_progress,
    )
    print(
        f"siftdata demo: Fashion-MNIST, 40% label noise, MLP, {args.steps} steps: "
        f"{' vs '.join(DEMO_METHODS)}"
    )
    summary = run_noisy_fmnist(cfg, args.out)
    print(format_table(summary))
    print(f"\nreport: {write_report(args.out)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .bench.noisy_fmnist import train_single

    if len(args.methods) != 1:
        raise ValueError(f"train takes one method, got {','.join(args.methods)}")
    out = args.out or _default_out("train")
    records = train_single(
        _scenario_config(args, seeds=1), out, checkpoint_every=args.checkpoint_every
    )
    last = records[-1]
    print(
        f"step {last['step']}: clean test accuracy {last['test_acc']:.4f}; metrics in {out / 'metrics.jsonl'}"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from .bench.report import write_report

    path = write_report(args.run_dir, plots=not args.no_plots, methods=args.methods)
    print(path.read_text())
    print(f"report: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"demo": _demo, "bench": _bench, "train": _train, "report": _report}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"siftdata {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
