"""The examples are real scripts: run them on a tiny budget (real Fashion-MNIST)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("extra", [[], ["--stale"]])
def test_plain_loop_learns(extra, capsys):
    argv = ["--steps", "150", "--pool-size", "5000", "--reference-epochs", "2", *extra]
    accuracy = _load("plain_loop").main(argv)
    assert accuracy > 0.6  # 10 classes: chance is 0.1; clean-reference selection learns fast
    assert "clean test accuracy" in capsys.readouterr().out
