"""The scenario protocol: every scenario is checked, prepared, swept and summarised one way."""

from __future__ import annotations

import json

import pytest

from siftdata.bench.protocol import run_scenario, sweep_runs
from siftdata.bench.sweep import SweepConfig
from siftdata.training.loop import TrainConfig


class FakeScenario:
    """Records what the protocol asks of it; its runs learn faster with more steps."""

    name = "fake"

    def __init__(self, fail_check: bool = False, stop_at: int | None = None) -> None:
        self.calls: list = []
        self.fail_check = fail_check
        self.stop_at = stop_at  # interrupt the run with this number (1-based), as Ctrl-C would

    def config(self) -> dict:
        return {"fake": {"size": 3}}

    def check(self) -> None:
        self.calls.append("check")
        if self.fail_check:
            raise ValueError("options do not fit")

    def prepare(self, out) -> None:
        assert (out / "config.json").exists()  # the run's options are on disk before any work
        self.calls.append("prepare")

    def run_one(self, method: str, seed: int, budget: float, *, checkpoint) -> list[dict]:
        self.calls.append((method, seed, budget))
        assert checkpoint.parent.is_dir()
        if checkpoint.exists():  # an interrupted run's checkpoint, handed back to resume it
            self.calls.append(("resumes from", checkpoint.read_text()))
        if self.stop_at is not None and len(self.calls) - 2 == self.stop_at:
            checkpoint.write_text("half a run")
            raise KeyboardInterrupt
        steps = round(budget * 10)
        bonus = 0.01 if method == "learnability" else 0.0
        return [
            {
                "method": method,
                "seed": seed,
                "budget": budget,
                "steps_budget": steps,
                "base_steps": 10,
                "step": step,
                "test_acc": 0.5 + 0.04 * step + bonus,
                "flops": 1e6 * step,
                "flops_end_to_end": 1e6 * step,
                "seconds": 0.1 * step,
            }
            for step in range(1, steps + 1)
        ]

    def extras(self, records: list[dict]) -> dict:
        return {"runs_seen": len({(r["method"], r["seed"], r["budget"]) for r in records})}


def _sweep_and_train():
    sweep = SweepConfig(methods=("learnability",), seeds=2, budgets=(0.5, 1.0))
    return sweep, TrainConfig(steps=10, seed=7, schedule="cosine", progress=False)


def test_run_scenario_checks_prepares_runs_every_run_and_merges_extras(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    fake = FakeScenario()
    summary = run_scenario(tmp_path, fake, sweep, train_cfg)
    runs = sweep_runs(sweep, train_cfg)
    assert fake.calls == ["check", "prepare", *[(m, s, b) for s, m, b in runs]]
    assert [s for s, _, _ in runs] == [7, 7, 7, 7, 8, 8, 8, 8]  # seeds outermost, from --seed
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"name": "fake", "fake": {"size": 3}}
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored == json.loads(json.dumps(summary))
    assert summary["scenario"] == "fake" and summary["runs_seen"] == 8
    assert set(summary["methods"]) == {"uniform", "learnability"}
    assert "budget_sweep" in summary  # two budgets
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 * (5 + 10 + 5 + 10)


def test_run_scenario_writes_nothing_when_the_check_fails(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    fake = FakeScenario(fail_check=True)
    with pytest.raises(ValueError, match="do not fit"):
        run_scenario(tmp_path, fake, sweep, train_cfg)
    assert fake.calls == ["check"] and list(tmp_path.iterdir()) == []


def test_an_interrupted_sweep_keeps_and_skips_its_finished_runs(tmp_path, capsys):
    sweep, train_cfg = _sweep_and_train()
    runs = [(m, s, b) for s, m, b in sweep_runs(sweep, train_cfg)]
    with pytest.raises(KeyboardInterrupt):
        run_scenario(tmp_path, FakeScenario(stop_at=4), sweep, train_cfg)
    before = (tmp_path / "metrics.jsonl").read_text()
    assert len(before.splitlines()) == 5 + 10 + 5  # the three finished runs
    assert not (tmp_path / "summary.json").exists()
    again = FakeScenario()
    summary = run_scenario(tmp_path, again, sweep, train_cfg)
    resumed = ("resumes from", "half a run")
    assert again.calls == ["check", "prepare", runs[3], resumed, *runs[4:]]  # 3 are not redone
    assert "3 of 8 runs finished earlier" in capsys.readouterr().err
    (tmp_path / "fresh").mkdir()
    uninterrupted = run_scenario(tmp_path / "fresh", FakeScenario(), sweep, train_cfg)
    assert summary == uninterrupted
    assert (tmp_path / "metrics.jsonl").read_text().startswith(before)
    assert not list((tmp_path / "checkpoints").iterdir())  # removed once their runs finished


def test_a_smaller_sweep_keeps_the_records_of_runs_it_no_longer_asks_for(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    run_scenario(tmp_path, FakeScenario(), sweep, train_cfg)
    fewer = SweepConfig(methods=("learnability",), seeds=1, budgets=(0.5, 1.0))
    summary = run_scenario(tmp_path, FakeScenario(), fewer, train_cfg)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["seed"] for r in records} == {7, 8}  # seed 8 kept in the file
    assert summary["runs_seen"] == 4  # ... and left out of the summary


def test_a_damaged_metrics_file_is_refused_naming_the_line(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    (tmp_path / "metrics.jsonl").write_text(
        '{"seed": 7, "method": "uniform", "budget": 1.0}\n{oops\n'
    )
    with pytest.raises(ValueError, match="metrics.jsonl line 2 is not a run's record"):
        run_scenario(tmp_path, FakeScenario(), sweep, train_cfg)
