"""The README's code runs as written: its Python blocks and its diffs, on a tiny budget.

The plain loop runs as it stands; each ``diff`` block is applied to the code before it (its
context and removed lines must be found there, in order) and the result runs. The excerpts of the
JEST, InfoBatch and SVP sections run after a small setup that provides the names the README says
come from the user's loop. A new block without a setup here fails, so the docs cannot drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import siftdata
from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.data.pairs import build_pairs
from siftdata.models import TwoTower, build_model
from siftdata.reference.embeddings import embed_pairs, save_reference_embeddings

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(python|diff)\n(.*?)^```$", re.M | re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text())]


def apply_diff(base: str, diff: str) -> str:
    """``base`` with ``diff`` applied: segments split by `` ...`` lines, each replacing the first
    run of its old lines (context and ``-``) found after the previous segment."""
    lines, at = base.splitlines(), 0
    segments: list[list[str]] = [[]]
    for line in diff.splitlines():
        if line.strip() == "...":
            segments.append([])
        else:
            segments[-1].append(line)
    for segment in segments:
        old = [line[1:] for line in segment if line[:1] in (" ", "-")]
        new = [line[1:] for line in segment if line[:1] in (" ", "+")]
        if line_prefix := [line for line in segment if line[:1] not in (" ", "-", "+")]:
            raise AssertionError(f"diff lines without a +, - or space prefix: {line_prefix}")
        start = _find(lines, old, at)
        lines[start : start + len(old)] = new
        at = start + len(new)
    return "\n".join(lines) + "\n"


def _find(lines: list[str], old: list[str], at: int) -> int:
    if not old:
        return at
    for i in range(at, len(lines) - len(old) + 1):
        if lines[i : i + len(old)] == old:
            return i
    raise AssertionError(f"the diff's old lines are not in the code before it:\n{old}")


def _shrunk(code: str, replacements: dict[str, str]) -> str:
    """The README's budgets made tiny; each replaced text must be there (or the test is stale)."""
    for old, new in replacements.items():
        assert old in code, f"the README no longer contains {old!r}: update this test"
        code = code.replace(old, new)
    return code


def _run(code: str, namespace: dict | None = None) -> dict:
    namespace = {"__name__": "readme", **(namespace or {})}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_every_block_of_the_readme_is_run_here():
    firsts = [code.splitlines()[0] for _, code in _blocks()]
    known = ("import torch, torch.nn", "+import math, siftdata", "+memory = ", "import torch")
    known += ("from torch.optim.lr_scheduler", "from siftdata import GradNormBound")
    for first in firsts:
        assert first.startswith(known), f"a README block this test does not run: {first!r}"
    assert len(firsts) == 6


def test_the_plain_loop_and_both_diffs_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the diff writes ./ref_cache
    (_, plain), (_, fresh), (_, stale) = _blocks()[:3]
    plain = _shrunk(plain, {"64, 2000, 10": "64, 30, 10"})
    ns = _run(plain)
    assert ns["step"] == 29 and ns["x"].shape[0] == 64

    selecting = _shrunk(apply_diff(plain, fresh), {"epochs=5": "epochs=1"})
    ns = _run(selecting)
    assert (tmp_path / "ref_cache" / "manifest.json").exists()
    assert ns["step"] == 29
    assert len(ns["sel"].indices) == ns["x"].shape[0] == ns["b"] == 64
    assert len(ns["loader"].dataset[0]) == 3  # WithIndex: (id, x, y)
    assert ns["loader"].batch_size == 640  # super-batches of 10·b

    ns = _run(apply_diff(selecting, stale))
    memory, ids = ns["memory"], ns["ids"]
    assert isinstance(ns["scorer"].learner, siftdata.RememberedLoss)
    assert torch.allclose(memory.lookup(ids), ns["losses"].detach())  # the last step remembered


def test_the_missing_reference_cache_error_says_how_to_build_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_reference_losses"):
        siftdata.load_reference_losses(tmp_path / "ref_cache", fingerprint={})


def test_the_jest_excerpt_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _blocks()[3][1]
    d = build_pairs(pool_size=640, curated_size=200, seed=0)
    b, device = 32, torch.device("cpu")
    ids = torch.arange(len(d.pool_labels))
    fp = siftdata.dataset_fingerprint(d.pool_labels, (d.pool_images, d.pool_tokens))
    reference = TwoTower(len(d.vocabulary))
    emb = embed_pairs(reference, d.pool_images, d.pool_tokens)
    save_reference_embeddings("ref_emb", ids, emb, fingerprint=fp)
    loader = DataLoader(TensorDataset(ids, d.pool_images, d.pool_tokens), batch_size=5 * b)
    model = TwoTower(len(d.vocabulary))
    ns = _run(code, {"fp": fp, "device": device, "loader": loader, "model": model, "b": b})
    assert ns["keep"].shape == (b,) and len(set(ns["keep"].tolist())) == b
    assert torch.isfinite(ns["loss"])


def _fmnist(n: int):
    images, labels = load_fashion_mnist("train")
    return to_float_images(images[:n]), labels[:n]


def test_the_infobatch_excerpt_runs_its_exact_step_count():
    code = _blocks()[4][1]
    x, y = _fmnist(1000)
    model = build_model("mlp")
    names = {"siftdata": siftdata, "F": F, "DataLoader": DataLoader, "E": 3, "lr": 1e-3}
    names.update(ds=TensorDataset(x, y), model=model, opt=torch.optim.AdamW(model.parameters()))
    ns = _run(code, names)
    # OneCycleLR raises past total_steps; the sampler announced exactly the steps taken
    assert ns["sched"].last_epoch == ns["sampler"].num_batches(64)


def test_the_svp_excerpt_keeps_half(tmp_path):
    code = _shrunk(_blocks()[5][1], {"epochs=2": "epochs=1"})
    x, y = _fmnist(1000)
    fp = siftdata.dataset_fingerprint(y, x)
    ns = _run(
        code, {"x": x, "y": y, "dataset": TensorDataset(x, y), "fp": fp, "path": tmp_path / "sel"}
    )
    assert len(ns["core"]) == 500
