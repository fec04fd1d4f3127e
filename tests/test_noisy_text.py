"""The noisy-text scenario: real WordNet glosses, a tokenizer trained here, runs through the
Hugging Face integration, the budget summary, the reference cached and a finished sweep kept."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers", reason="needs the hf extra: pip install 'siftdata[hf]'")

from siftdata.bench.noisy_text import NoisyTextConfig, encoder_flops, prepare_text  # noqa: E402
from siftdata.cli.main import main  # noqa: E402
from siftdata.data import NOUN_SUPERSENSES  # noqa: E402

pytestmark = pytest.mark.integration

TINY = ["--steps", "40", "--eval-every", "20", "--reference-steps", "30", "--pool-size", "3000"]
TINY += ["--test-size", "500", "--holdout-size", "1000", "--seeds", "1", "--no-progress"]


def test_the_splits_are_disjoint_the_noise_is_in_the_pool_only_and_tokens_fit():
    cfg = NoisyTextConfig(pool_size=3000, test_size=500, holdout_size=1000, noise=0.4)
    data = prepare_text(cfg, seed=0)
    pool, test = data.splits["pool"], data.splits["test"]
    assert pool["input_ids"].shape == (3000, cfg.max_length) and len(test["labels"]) == 500
    assert abs(float(data.is_corrupted.float().mean()) - 0.4) < 0.01
    assert int(pool["labels"].max()) < len(NOUN_SUPERSENSES)
    assert int(pool["input_ids"].max()) < data.vocab_size
    assert (pool["attention_mask"].sum(1) >= 1).all()
    assert torch.equal(pool["id"], torch.arange(3000))
    again = prepare_text(cfg, seed=0)  # a fixed seed gives the same splits and tokens
    assert torch.equal(again.splits["pool"]["input_ids"], pool["input_ids"])


def test_encoder_flops_grow_with_width_depth_and_length():
    base = encoder_flops(NoisyTextConfig())
    assert encoder_flops(NoisyTextConfig(layers=4)) > 1.9 * base
    assert encoder_flops(NoisyTextConfig(hidden=128)) > 3 * base
    assert encoder_flops(NoisyTextConfig(max_length=64)) > 2 * base


def test_a_tiny_sweep_runs_through_the_trainer_and_a_finished_one_is_kept(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["bench", "noisy-text", *TINY, "--methods", "uniform,learnability+stale"]
    argv += ["--budgets", "0.5,1", "--out", str(out)]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    runs = {(r["method"], r["budget"]) for r in records}
    assert runs == {(m, b) for m in ("uniform", "learnability+stale") for b in (0.5, 1.0)}
    last = {(r["method"], r["budget"]): r for r in records}
    assert last["uniform", 1.0]["step"] == 40 and last["uniform", 0.5]["step"] == 20
    assert last["uniform", 1.0]["mislabeled_selected"] == pytest.approx(0.4, abs=0.08)
    stale = last["learnability+stale", 1.0]
    assert stale["flops_by_phase"]["score"] == 0  # remembered losses: no scoring forward
    assert stale["flops_end_to_end"] > stale["flops"] > last["uniform", 1.0]["flops"]
    summary = json.loads((out / "summary.json").read_text())
    assert "budget_sweep" in summary and summary["reference"]["steps"] == 30
    assert (out / "reference" / "manifest.json").exists()
    assert main([*argv[:-2], "--out", str(out), "--resume"]) == 0  # nothing left to run
    assert "4 of 4 runs finished earlier" in capsys.readouterr().err
