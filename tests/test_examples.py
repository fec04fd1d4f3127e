"""The examples are real scripts: run them on a tiny budget (real Fashion-MNIST)."""

import importlib.util
import tempfile
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("extra", [[], ["--stale"]])
def test_plain_loop_selects_and_cleans_up(extra, capsys):
    before = set(Path(tempfile.gettempdir()).glob("siftdata-ref-*"))
    argv = ["--steps", "150", "--pool-size", "5000", "--reference-epochs", "2", *extra]
    accuracy, mislabeled = _load("plain_loop").main(argv)
    assert accuracy > 0.6  # 10 classes: chance is 0.1
    # uniform sampling trains on 40% mislabeled examples; learnability selection avoids them
    assert mislabeled < 0.2
    assert "mislabeled share" in capsys.readouterr().out
    assert set(Path(tempfile.gettempdir()).glob("siftdata-ref-*")) == before  # cache removed


def test_jest_loop_avoids_mismatched_pairs(capsys):
    argv = [
        "--steps",
        "60",
        "--pool-size",
        "5000",
        "--reference-steps",
        "150",
        "--batch-size",
        "64",
    ]
    accuracy, mismatched = _load("jest_loop").main(argv)
    assert accuracy > 0.2  # zero-shot over 10 classes: chance is 0.1
    assert mismatched < 0.35  # uniform sampling trains on 50% mismatched pairs
    assert "mismatched share" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["infobatch", "importance"])
def test_unbiased_loop_trains_with_an_exactly_sized_schedule(mode, capsys):
    argv = ["--mode", mode, "--epochs", "3", "--pool-size", "3000"]
    accuracy, share = _load("unbiased_loop").main(argv)
    assert accuracy > 0.6
    if mode == "infobatch":  # 3 epochs, δ = 0.875: epoch 1 alone is pruned, by 0.5 · 1500 of 3000
        assert share == pytest.approx(750 / 9000)
    else:
        assert 0.0 <= share <= 1.0
    assert mode in capsys.readouterr().out


def test_svp_coreset_example_trains_the_target_on_the_proxy_core_set(capsys):
    argv = ["--pool-size", "2000", "--keep", "0.5", "--proxy-epochs", "1", "--target-epochs", "4"]
    accuracy = _load("svp_coreset").main(argv)
    assert accuracy > 0.5  # 10 classes: chance is 0.1
    assert "core-set: 1000 of 2000 examples" in capsys.readouterr().out


@pytest.mark.integration
def test_hf_trainer_example_selects_away_from_mislabeled_glosses(capsys, monkeypatch):
    pytest.importorskip("transformers", reason="needs the hf extra: pip install 'siftdata[hf]'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["--steps", "40", "--reference-steps", "20", "--pool", "4000"]
    accuracy, mislabeled = _load("hf_trainer").main(argv)
    assert 0.0 <= accuracy <= 1.0
    assert mislabeled < 0.4  # uniform trains on 40% mislabeled glosses
    assert "mislabeled share of trained examples" in capsys.readouterr().out


@pytest.mark.integration
def test_lightning_example_selects_away_from_mislabeled_images(capsys):
    pytest.importorskip(
        "lightning", reason="needs the lightning extra: pip install 'siftdata[lightning]'"
    )
    accuracy, mislabeled = _load("lightning_callback").main(
        ["--steps", "100", "--reference-epochs", "2"]
    )
    assert accuracy > 0.6  # 10 classes: chance is 0.1
    assert mislabeled < 0.25  # uniform trains on 40% mislabeled images
    assert "mislabeled share of trained examples" in capsys.readouterr().out
