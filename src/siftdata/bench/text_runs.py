"""One noisy-text run through the Hugging Face integration, and the scenario under the protocol.

Every run is a :class:`~siftdata.integrations.hf.SelectiveTrainer` (uniform too: a method
without a scorer trains on the first ``b`` of each super-batch, so every method sees the same
data loader), with the Trainer's own LR schedule decayed to the run's budget. A callback
evaluates on the clean test set every ``eval_every`` steps and writes the records the budget
summaries read (steps, FLOPs, seconds, the mislabeled share of what was trained). FLOPs are
counted from the encoder's size (:func:`~siftdata.bench.noisy_text.encoder_flops`): training
``3·f`` an example, a scoring forward ``f`` an example of the super-batch, and end to end the
reference's training and its cache fill.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._seeding import derive_seed
from ..online.methods import SelectionConfig, build_method, parse_method
from ..training.config import TrainConfig
from .noisy_text import (
    NUM_CLASSES,
    NoisyTextConfig,
    TextData,
    encoder,
    encoder_flops,
    evaluate_text,
    prepare_text,
    text_reference,
)
from .protocol import run_scenario
from .sweep import SweepConfig, check_budgets

__all__ = ["NoisyTextScenario", "TEXT_METHODS", "run_noisy_text", "check_text_options"]

TEXT_METHODS = ("uniform", "learnability", "learnability+stale", "learnability-topk", "importance")
"""The scenario's default methods."""


def check_text_options(cfg: NoisyTextConfig, train_cfg: TrainConfig, sweep: SweepConfig) -> None:
    """Checks across option groups, before any data is loaded or the run folder claimed."""
    check_budgets(train_cfg, (*sweep.budgets, *sweep.uniform_budgets))
    if train_cfg.super_batch_factor != int(train_cfg.super_batch_factor):
        raise ValueError(
            f"super_batch_factor must be a whole number here (the Trainer's super-batches are "
            f"whole batches), got {train_cfg.super_batch_factor}"
        )


@dataclass
class _Recorder:
    """The records of one run: an evaluation at step 0, every ``eval_every`` and at the end."""

    tags: dict
    data: TextData
    every: int
    steps: int
    flops_per_example: int
    reference: tuple[int, int, float]
    """The reference's (cache fill, training) FLOPs and its seconds (training and cache fill):
    what amortised and end-to-end costs add."""
    batch: int
    super_batch: int
    records: list = field(default_factory=list)
    corrupted: torch.Tensor | int = 0
    """Mislabeled examples trained so far, summed on the device (read at each record)."""
    trained: int = 0
    flags: torch.Tensor | None = None
    """``is_corrupted`` where the trained ids are."""
    seconds: float = 0.0
    eval_seconds: float = 0.0

    def count(self, ids: torch.Tensor) -> None:
        if self.flags is None or self.flags.device != ids.device:
            self.flags = self.data.is_corrupted.to(ids.device)  # once, not every step
        self.corrupted = self.corrupted + self.flags.index_select(0, ids).sum()
        self.trained += ids.numel()

    def record(self, trainer, step: int) -> None:
        start = time.perf_counter()
        accuracy, loss = evaluate_text(trainer.model, self.data.splits["test"])
        self.eval_seconds += time.perf_counter() - start
        f, (cache, reference_train, reference_seconds) = self.flops_per_example, self.reference
        train = 3 * f * self.batch * step
        score = f * self.super_batch * trainer.scoring_forwards
        stats = trainer.take_selection_stats()
        self.records.append(
            {
                **self.tags,
                "step": step,
                "examples_trained": step * self.batch,
                "test_acc": accuracy,
                "test_loss": loss,
                "flops": train + score + cache,
                "flops_end_to_end": train + score + cache + reference_train,
                "seconds": self.seconds,
                "seconds_end_to_end": self.seconds + reference_seconds,
                "flops_by_phase": {
                    "train": train,
                    "score": score,
                    "reference": cache,
                    "reference_train": reference_train,
                },
                "seconds_by_phase": {"train": self.seconds, "eval": self.eval_seconds},
                "mislabeled_selected": int(self.corrupted) / self.trained if self.trained else None,
                "selection_stats": stats,
            }
        )


def _callback(recorder: _Recorder):
    from transformers import TrainerCallback

    class Evaluate(TrainerCallback):
        """Times the steps and evaluates every ``eval_every`` (outside the timed part)."""

        def __init__(self) -> None:
            self.trainer = None
            self.started = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            recorder.record(self.trainer, 0)

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            recorder.seconds += time.perf_counter() - self.started
            step = state.global_step
            if step % recorder.every == 0 or step == recorder.steps:
                recorder.record(self.trainer, step)
            return control

    return Evaluate()


@dataclass
class NoisyTextScenario:
    """The noisy-text scenario under the protocol of :mod:`siftdata.bench.protocol`."""

    scenario: NoisyTextConfig
    sweep: SweepConfig
    train_cfg: TrainConfig
    selection: SelectionConfig
    name: str = "noisy-text"
    data: TextData | None = field(default=None, init=False, repr=False)
    ref: object = field(default=None, init=False, repr=False)

    def config(self) -> dict:
        return {
            "scenario": asdict(self.scenario),
            "sweep": asdict(self.sweep),
            "train": asdict(self.train_cfg),
            "selection": asdict(self.selection),
        }

    def check(self) -> None:
        check_text_options(self.scenario, self.train_cfg, self.sweep)

    def prepare(self, out: Path) -> None:
        torch.set_num_threads(self.scenario.threads)
        self.data = prepare_text(self.scenario, self.train_cfg.seed)
        if any(parse_method(m).uses_reference for m in self.sweep.methods):
            self.ref = text_reference(
                self.scenario,
                self.data,
                out,
                seed=self.train_cfg.seed,
                progress=self.train_cfg.progress,
            )

    def run_one(self, method: str, seed: int, budget: float, *, checkpoint=None) -> list[dict]:
        del checkpoint  # a run is short: an interrupted one is run again, finished ones are kept
        return _run(self, method, seed, budget)

    def extras(self, records: list[dict]) -> dict:
        if self.ref is None:
            return {}
        ref = self.ref
        return {
            "reference": {
                **ref.info,
                "train_flops": ref.train_flops,
                "cache_flops": ref.cache_flops,
            }
        }


def _run(bench: NoisyTextScenario, name: str, seed: int, budget: float) -> list[dict]:
    from transformers import TrainingArguments

    from ..integrations.hf import SelectiveTrainer
    from .noisy_text import _rows

    cfg, t, data = bench.scenario, bench.train_cfg, bench.data
    steps, factor = round(budget * t.steps), int(t.super_batch_factor)
    spec, ref = parse_method(name), bench.ref
    method = build_method(
        spec,
        config=bench.selection,
        reference=ref.losses if spec.uses_reference else None,
        example_ids=len(data.is_corrupted),
        num_classes=NUM_CLASSES,
        super_batch_factor=factor,
        seed=derive_seed(seed, "selector"),
    )
    uses = spec.uses_reference
    ref_flops = (ref.cache_flops, ref.train_flops, ref.info["seconds"]) if uses else (0, 0, 0.0)
    tags = {"method": name, "seed": seed, "budget": budget, "steps_budget": steps}
    recorder = _Recorder(
        {**tags, "base_steps": t.steps}, data, t.eval_every, steps, encoder_flops(cfg),
        ref_flops, t.batch_size, t.batch_size * factor,
    )  # fmt: skip
    callback = _callback(recorder)
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(
            folder, per_device_train_batch_size=t.batch_size, max_steps=steps,
            learning_rate=t.lr, weight_decay=t.weight_decay, lr_scheduler_type=t.schedule,
            warmup_steps=t.warmup_steps, save_strategy="no", report_to=[], seed=seed,
            data_seed=derive_seed(seed, "data"), logging_strategy="no", disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
        trainer = SelectiveTrainer(
            model=encoder(cfg, data.vocab_size, derive_seed(seed, "init")),
            args=args,
            train_dataset=_rows(data.splits["pool"]),
            method=method,
            super_batch_factor=factor,
            on_trained=recorder.count,
            callbacks=[callback],
        )
        callback.trainer = trainer
        trainer.train()
    return recorder.records


def run_noisy_text(
    out: Path,
    *,
    scenario: NoisyTextConfig,
    sweep: SweepConfig,
    train_cfg: TrainConfig,
    selection: SelectionConfig,
) -> dict:
    """Run every (seed, method, budget); write ``config.json``, ``metrics.jsonl`` (after each
    run) and ``summary.json`` into ``out``; return the summary."""
    bench = NoisyTextScenario(scenario, sweep, train_cfg, selection)
    return run_scenario(out, bench, sweep, train_cfg)
