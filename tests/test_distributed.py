"""Global selection on real processes (gloo on loopback): W ranks select what one process selects
over the same global super-batch, for every online family; bad input fails, never hangs."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _ranks import run_ranks
from siftdata.core.pairwise import PairEmbeddings
from siftdata.distributed import select_batch_global, take_share, world_of
from siftdata.online import select_batch
from siftdata.online.greedy import TopKSelector
from siftdata.online.importance import ImportanceSampler
from siftdata.online.joint import JointSampler
from siftdata.online.sampled import SoftmaxSampler
from siftdata.scoring.pair_scorers import PairScorer
from siftdata.scoring.scorers import GradNormBound, Learnability, LearnerLoss, ReferenceLoss
from siftdata.store import ScoreTable
from siftdata.training.loop import train

pytestmark = pytest.mark.distributed

B, K, D = 48, 12, 6
BIG = 2**40  # ids above 2**24 must stay exact


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 5))


def _super_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, D, generator=g)
    y = torch.randint(0, 5, (B,), generator=g)
    ids = BIG + torch.arange(B) * 3
    return x, y, ids


def _reference():
    _, _, ids = _super_batch()
    return ScoreTable(ids, torch.rand(B, generator=torch.Generator().manual_seed(2)))


FAMILIES = {
    "learnability-topk": lambda: (
        Learnability(LearnerLoss(), ReferenceLoss(_reference())),
        TopKSelector(),
    ),
    "softmax": lambda: (LearnerLoss(), SoftmaxSampler(temperature=0.5, seed=4, unbiased=True)),
    "importance": lambda: (GradNormBound(), ImportanceSampler(smoothing=0.1, seed=5)),
}


def _select_on_ranks(rank, world_size, family):
    scorer, selector = FAMILIES[family]()
    x, y, ids = _super_batch()
    share = B // world_size
    mine = slice(rank * share, (rank + 1) * share)
    out = []
    for _ in range(3):  # the selectors' generators must stay in step
        sel = select_batch_global(
            _model(), x[mine], y[mine], ids[mine], k=K, scorer=scorer, selector=selector
        )
        tx, ty, tw = take_share(sel, x[mine], y[mine])
        out.append({"ids": sel.ids, "share_ids": sel.share_ids, "x": tx, "y": ty, "w": tw})
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_two_ranks_select_what_one_process_selects(family):
    ranks = run_ranks(_select_on_ranks, 2, family)
    scorer, selector = FAMILIES[family]()
    x, y, ids = _super_batch()
    for step in range(3):
        one = select_batch(_model(), x, y, ids, k=K, scorer=scorer, selector=selector)
        expected = ids[one.indices]
        for rank, steps in enumerate(ranks):
            got = steps[step]
            assert torch.equal(got["ids"], expected)  # exact int64 ids above 2**24
            share = slice(rank * K // 2, (rank + 1) * K // 2)
            assert torch.equal(got["share_ids"], expected[share])
            assert torch.equal(got["x"], x[one.indices[share]])
            assert torch.equal(got["y"], y[one.indices[share]])
            if one.weights is None:
                assert got["w"] is None
            else:
                torch.testing.assert_close(got["w"], one.weights[share])


def _two_tower_outputs(ids):
    g = torch.Generator().manual_seed(int(ids[0] % 1000))
    image = F.normalize(torch.randn(ids.numel(), 4, generator=g), dim=1)
    text = F.normalize(image + 0.5 * torch.randn(ids.numel(), 4, generator=g), dim=1)
    return PairEmbeddings(image, text, torch.tensor(10.0), torch.tensor(-5.0))


class _Lookup:
    """Reference embeddings by id, the same on every rank."""

    def lookup(self, ids):
        return _two_tower_outputs(ids - BIG + 7)

    def check_ids(self, ids):
        return None


class _Embedder(nn.Module):
    """A "two-tower model" whose outputs are fixed embeddings of the batch rows' ids."""

    def forward(self, ids):
        return _two_tower_outputs(ids)


def _jest_on_ranks(rank, world_size):
    _, _, ids = _super_batch()
    share = B // world_size
    mine = ids[rank * share : (rank + 1) * share]
    scorer = PairScorer("learnability", reference=_GlobalLookup())
    sel = select_batch_global(
        _GlobalEmbedder(), mine, None, mine, k=K, scorer=scorer, selector=JointSampler(chunks=3)
    )
    return sel.ids


class _GlobalEmbedder(nn.Module):
    """Embeddings of the global super-batch, each rank's rows taken by its ids' positions."""

    def forward(self, ids):
        full = _two_tower_outputs(_super_batch()[2])
        rows = (ids - BIG) // 3
        return PairEmbeddings(full.image[rows], full.text[rows], full.scale, full.bias)


class _GlobalLookup:
    def lookup(self, ids):
        full = _two_tower_outputs(_super_batch()[2] + 1)
        rows = (ids - BIG) // 3
        return PairEmbeddings(full.image[rows], full.text[rows], full.scale, full.bias)

    def check_ids(self, ids):
        return None


def test_jest_draws_jointly_over_every_ranks_pairs():
    ranks = run_ranks(_jest_on_ranks, 2)
    _, _, ids = _super_batch()
    scorer = PairScorer("learnability", reference=_GlobalLookup())
    one = select_batch(
        _GlobalEmbedder(), ids, None, ids, k=K, scorer=scorer, selector=JointSampler(chunks=3)
    )
    for got in ranks:
        assert torch.equal(got, ids[one.indices])


def _uneven_k(rank, world_size):
    x, y, ids = _super_batch()
    try:
        select_batch_global(
            _model(), x[:8], y[:8], ids[:8], k=5, scorer=LearnerLoss(), selector=TopKSelector()
        )
    except ValueError as error:
        return str(error)
    return "no error"


def test_a_selection_the_world_size_does_not_divide_is_refused_on_every_rank():
    for message in run_ranks(_uneven_k, 2):
        assert "must be a multiple of the world size (2)" in message


def test_one_process_is_a_world_of_one():
    world = world_of()
    assert (world.rank, world.size, world.distributed) == (0, 1, False)
    with pytest.raises(ValueError, match="not initialised"):
        world_of(object())


# --- the training loop on W ranks: the same selections, the same learner --------------------

LOOP_METHODS = [
    "learnability",
    "learnability+stale",
    "importance",
    "importance-open",  # the gate open (τ threshold just above 1): importance selects
    "uniform",
    "infobatch",
]


class _Stop(Exception):
    """An interruption after a given step."""


def _loop_method(name):
    from test_train import _method

    if name == "infobatch":
        return _method("uniform")
    if name == "importance-open":
        return _method("importance", tau_threshold=1.0001)
    return _method(name)


def _loop_run(rank, world_size, name, steps, folder=None, stop=None):
    from torch.nn.parallel import DistributedDataParallel

    from siftdata.online.infobatch import InfoBatchSource
    from test_train import N, _config, _data, _model

    model = _model(seed=1)
    rows: set[tuple[bool, int]] = set()  # (training forward?, rows) of every forward
    model.register_forward_hook(
        lambda module, args, out: rows.add((torch.is_grad_enabled(), args[0].shape[0]))
    )
    if world_size > 1:
        model = DistributedDataParallel(model)
    trained: list[torch.Tensor] = []
    config = _config(steps=steps, eval_every=10, checkpoint_every=10 if folder else 0)

    def on_step(step, ids):
        trained.append(ids.clone())
        if step == stop:
            raise _Stop

    source = InfoBatchSource(N, epochs=3, seed=2) if name == "infobatch" else None
    result = None
    with contextlib.suppress(_Stop):
        result = train(
            model,
            _loop_method(name),
            _data(),
            config,
            source=source,
            on_step=on_step,
            world=world_of() if world_size > 1 else None,
            checkpoint_path=None if folder is None else folder / "ck.pt",
        )
    module = model.module if world_size > 1 else model
    losses = [r["train_loss"] for r in result.records[1:]] if result else []  # [0]: None
    return {
        "trained": torch.stack(trained),
        "weights": module.state_dict(),
        "rows": rows,
        "train_loss": losses,
    }


@pytest.mark.parametrize("name", LOOP_METHODS)
def test_the_loop_on_two_ranks_trains_what_one_process_trains(name):
    steps = 30
    ranks = run_ranks(_loop_run, 2, name, steps)
    one = _loop_run(0, 1, name, steps)
    b, big_b = 8, 32  # test_train's batch and super-batch
    training = {r for grad, r in one["rows"] if grad}
    assert training == {b}
    for got in ranks:
        assert {r for grad, r in got["rows"] if grad} == {b // 2}  # each rank trains its share
        scoring = {r for grad, r in got["rows"] if not grad} - {1, 100}  # label check, test set
        assert scoring <= {big_b // 2}  # and scores its share of the super-batch
        assert torch.equal(got["trained"], one["trained"])  # every step's global selection
        assert got["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)  # over ranks
        for key, value in one["weights"].items():
            torch.testing.assert_close(got["weights"][key], value, rtol=1e-4, atol=1e-5)


def _jest_loop_run(rank, world_size, steps, name="jest"):
    from torch.nn.parallel import DistributedDataParallel

    from siftdata.core.pairwise import per_example_sigmoid_loss
    from siftdata.distributed import global_sigmoid_loss
    from siftdata.online.pair_methods import PairSelectionConfig, build_pair_method
    from test_pair_training import _config, _data, _evaluator, _towers

    world = world_of() if world_size > 1 else None
    data, reference = _data()
    model = _towers()
    model.early = nn.Identity()  # no early exit here: no parameter DDP would wait for
    wrapped = DistributedDataParallel(model) if world_size > 1 else model
    config = PairSelectionConfig(chunks=4, low_res_share=0.3)  # positions that split unevenly
    method = build_pair_method(name, config=config, reference=reference)
    trained: list[torch.Tensor] = []
    train(
        wrapped,
        method,
        data,
        _config(steps=steps, checkpoint_every=0),
        loss_fn=global_sigmoid_loss(world) if world else per_example_sigmoid_loss,
        evaluator=_evaluator,
        on_step=lambda step, ids: trained.append(ids.clone()),
        world=world,
    )
    return {"trained": torch.stack(trained), "weights": model.state_dict()}


@pytest.mark.parametrize("name", ["jest", "jest-flexi"])
def test_jest_in_the_loop_on_two_ranks_trains_what_one_process_trains(name):
    # jest-flexi: each rank trains its share of the low-resolution positions of the whole
    # selection, the low-resolution forward outside DDP's wrapper (one forward per backward)
    ranks = run_ranks(_jest_loop_run, 2, 12, name)
    one = _jest_loop_run(0, 1, 12, name)
    for got in ranks:
        assert torch.equal(got["trained"], one["trained"])
        for key, value in one["weights"].items():
            torch.testing.assert_close(got["weights"][key], value, rtol=1e-4, atol=1e-5)


def test_two_ranks_resume_exactly_and_another_world_size_is_refused(tmp_path):
    steps = 30
    whole = _loop_run(0, 1, "learnability+stale", steps)
    head = run_ranks(_loop_run, 2, "learnability+stale", steps, tmp_path, 15)  # checkpoint at 10
    tail = run_ranks(_loop_run, 2, "learnability+stale", steps, tmp_path)
    for first, rest in zip(head, tail, strict=True):
        assert torch.equal(torch.cat([first["trained"][:10], rest["trained"]]), whole["trained"])
        for key, value in whole["weights"].items():
            torch.testing.assert_close(rest["weights"][key], value, rtol=1e-4, atol=1e-5)
    from siftdata.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="world_size"):
        _loop_run(0, 1, "learnability+stale", steps, tmp_path)  # one process, a 2-rank checkpoint


def _disagreeing_seeds(rank, world_size):
    from test_train import _config, _data, _method, _model

    model = torch.nn.parallel.DistributedDataParallel(_model())
    try:
        train(model, _method("learnability"), _data(), _config(seed=rank), world=world_of())
    except ValueError as error:
        return str(error)
    return "no error"


def test_ranks_that_would_draw_other_super_batches_are_refused_on_every_rank():
    for message in run_ranks(_disagreeing_seeds, 2):
        assert "the ranks disagree on the options" in message and "seed=1" in message


def test_a_rank_that_fails_ends_the_run_under_torchrun_instead_of_hanging():
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "one_rank_fails.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    start = time.monotonic()
    done = subprocess.run(
        [*torchrun, "--nproc_per_node=2", str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and time.monotonic() - start < 60
    assert "rank 1 found bad data" in done.stdout + done.stderr


TINY_TRAIN = ["--steps", "40", "--eval-every", "20", "--reference-epochs", "1", "--no-progress"]
TINY_TRAIN += ["--holdout-size", "2000", "--reference-val-size", "200", "--device", "cpu"]


def _records(path):
    import json

    keys = ("step", "test_acc", "mislabeled_selected", "examples_trained", "flops")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: r[k] for k in keys} for r in rows], [r["train_loss"] for r in rows[1:]]


def test_siftdata_train_under_torchrun_matches_one_process(tmp_path):
    import subprocess
    import sys

    from siftdata.cli.main import main

    argv = ["train", "--method", "learnability+stale", *TINY_TRAIN, "--record-selections"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run = [*torchrun, "-m", "siftdata", *argv, "--out", str(tmp_path / "two")]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("clean test accuracy") == 1  # rank 0 reports
    one, two = (
        _records(tmp_path / "one" / "metrics.jsonl"),
        _records(tmp_path / "two" / "metrics.jsonl"),
    )
    assert one[0] == two[0] and two[1] == pytest.approx(one[1], rel=1e-5)
    from siftdata.training.selection_log import read_selection_log

    log_one, counts_one = read_selection_log(tmp_path / "one" / "selections")
    log_two, counts_two = read_selection_log(tmp_path / "two" / "selections")
    assert log_one.shape == (40, 64) and (log_one == log_two).all()  # every step's global ids
    assert all((counts_one[k] == counts_two[k]).all() for k in counts_one)
    again = subprocess.run(run, capture_output=True, text=True, timeout=300)  # finished: refused
    assert again.returncode != 0 and "finished; use --resume" in again.stderr


# --- offline scoring sharded over ranks ------------------------------------------------------


def _scoring_inputs(n=3000):
    from siftdata.data import load_fashion_mnist, to_float_images
    from siftdata.models import build_model
    from siftdata.scoring.scorers import Entropy

    images, labels = load_fashion_mnist("train")
    torch.manual_seed(3)
    model = build_model("mlp")
    scorers = {"entropy": Entropy(), "el2n": GradNormBound()}
    return model, to_float_images(images[:n]), labels[:n], scorers


def _score_on_ranks(rank, world_size, folder):
    from siftdata.distributed import score_dataset_on_ranks

    model, x, y, scorers = _scoring_inputs()
    result = score_dataset_on_ranks(
        model,
        x,
        y,
        scorers,
        shard_dir=folder,
        world=world_of(),
        shard_size=700,
        embeddings=True,
        progress=False,
    )
    return {"scores": result.scores, "embeddings": result.embeddings}


def test_two_ranks_score_the_dataset_bit_for_bit_as_one_process_and_resume(tmp_path):
    from siftdata.offline.scoring import score_dataset

    model, x, y, scorers = _scoring_inputs()
    one = score_dataset(model, x, y, scorers, shard_size=700, embeddings=True, progress=False)
    folder = tmp_path / "shards"
    # rank 0 finished its shards (0, 2, 4) before an interruption; rank 1 did not
    score_dataset(
        model,
        x,
        y,
        scorers,
        shard_dir=folder,
        shard_size=700,
        embeddings=True,
        progress=False,
        share=(0, 2),
    )
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-*.pt")}
    assert sorted(before) == ["shard-00000.pt", "shard-00002.pt", "shard-00004.pt"]
    ranks = run_ranks(_score_on_ranks, 2, folder)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("shard-0000[024].pt")} == before
    assert len(list(folder.glob("shard-*.pt"))) == 5  # 3000 rows in shards of 700
    for got in ranks:
        for name, values in one.scores.items():
            assert torch.equal(got["scores"][name], values)
        assert torch.equal(got["embeddings"], one.embeddings)


def _uneven_last_batch(rank, world_size):
    x, y, ids = _super_batch()
    n = 8 if rank == 0 else 6  # rank 1's last batch is short
    try:
        select_batch_global(
            _model(), x[:n], y[:n], ids[:n], k=4, scorer=LearnerLoss(), selector=TopKSelector()
        )
    except ValueError as error:
        return str(error)
    return "no error"


def test_an_uneven_last_batch_is_refused_on_every_rank_instead_of_crashing_the_collective():
    for message in run_ranks(_uneven_last_batch, 2):
        assert "same number of examples" in message and "rank 0: 8, rank 1: 6" in message


def test_siftdata_bench_under_torchrun_matches_one_process(tmp_path):
    import json
    import subprocess
    import sys

    from siftdata.cli.main import main

    argv = ["bench", "noisy-fmnist", "--methods", "uniform,learnability+stale", "--seeds", "1"]
    argv += [*TINY_TRAIN, "--budgets", "0.5,1", "--schedule", "cosine"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run = [*torchrun, "-m", "siftdata", *argv, "--out", str(tmp_path / "two")]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("report:") == 1  # rank 0 reports

    def rows(folder):
        keys = ("method", "budget", "seed", "step", "test_acc", "mislabeled_selected")
        lines = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        return [{k: r[k] for k in keys} for r in map(json.loads, lines)]

    assert rows("one") == rows("two")
    summary = [json.loads((tmp_path / f / "summary.json").read_text()) for f in ("one", "two")]
    assert summary[0]["budget_sweep"].keys() == summary[1]["budget_sweep"].keys()


def _sources_that_disagree(rank, world_size):
    from siftdata.online.infobatch import InfoBatchSource
    from test_train import N, _config, _data, _method, _model

    model = torch.nn.parallel.DistributedDataParallel(_model())
    source = InfoBatchSource(N, epochs=3, seed=2 + rank)  # each rank would draw its own batches
    try:
        train(model, _method("uniform"), _data(), _config(), source=source, world=world_of())
    except ValueError as error:
        return str(error)
    return "no error"


def test_batch_sources_that_would_draw_other_super_batches_are_refused_on_every_rank():
    for message in run_ranks(_sources_that_disagree, 2):
        assert "the ranks disagree on the batch source" in message


def test_siftdata_score_under_torchrun_writes_the_stores_of_one_process(tmp_path):
    import os
    import subprocess
    import sys

    from siftdata.offline.stored import load_score

    scores = "entropy,kcenter,forgetting"
    argv = ["score", "--pool-size", "3000", "--epochs", "1", "--scores", scores]
    argv += ["--shard-size", "700", "--no-progress"]
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # as torchrun gives each rank
    alone = [sys.executable, "-m", "siftdata", *argv, "--out", str(tmp_path / "one")]
    assert subprocess.run(alone, env=one_thread, capture_output=True, timeout=300).returncode == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run = [*torchrun, "-m", "siftdata", *argv, "--out", str(tmp_path / "two")]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("entropy:") == 1  # rank 0 reports
    assert not (tmp_path / "two" / ".shards").exists()  # removed once the stores are written
    for name in scores.split(","):
        one, two = (load_score(tmp_path / f / name) for f in ("one", "two"))
        assert torch.equal(one.ids, two.ids) and torch.equal(one.scores, two.scores), name
    again = subprocess.run(run, capture_output=True, text=True, timeout=300)  # finished: refused
    assert again.returncode != 0 and "finished; use --resume" in again.stderr


@pytest.mark.parametrize("name", ["learnability", "learnability+stale"])
def test_the_hf_trainer_on_two_ranks_selects_what_one_process_selects(tmp_path, name):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("transformers", reason="needs the hf extra: pip install 'siftdata[hf]'")
    script = str(Path(__file__).parent / "scripts" / "hf_trainer_ranks.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    alone = subprocess.run(
        [sys.executable, script, str(one), name, "8"], env=env, capture_output=True, text=True
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ranks = subprocess.run(
        [*torchrun, script, str(two), name, "4"], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert ranks.returncode == 0, ranks.stderr[-2000:]
    whole = torch.load(one / "rank0.pt")
    shares = [torch.load(two / f"rank{r}.pt") for r in range(2)]
    # each step's global selection: rank 0's share, then rank 1's
    assert torch.equal(torch.cat([s["trained"] for s in shares], dim=1), whole["trained"])
    for key, value in whole["weights"].items():
        torch.testing.assert_close(shares[0]["weights"][key], value, rtol=1e-4, atol=1e-5)


def test_lightning_ddp_on_two_cpu_processes_selects_what_one_process_selects(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip(
        "lightning", reason="needs the lightning extra: pip install 'siftdata[lightning]'"
    )
    script = str(Path(__file__).parent / "scripts" / "lightning_ranks.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for devices, batch in ((1, 128), (2, 64)):
        out = tmp_path / f"devices{devices}"
        out.mkdir()
        done = subprocess.run(
            [sys.executable, script, str(out), "learnability-topk", str(devices), str(batch)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        runs[devices] = [torch.load(out / f"rank{r}.pt") for r in range(devices)]
    (whole,), shares = runs[1], runs[2]
    # each rank is dealt the rows r, r + 2, ... of one order: each step's global super-batch
    # is the one process's, in another order, so top-k keeps the same set
    for step, chosen in enumerate(whole["trained"]):
        both = torch.cat([s["trained"][step] for s in shares])
        assert sorted(both.tolist()) == sorted(chosen.tolist()), step
    for key, value in whole["weights"].items():
        torch.testing.assert_close(shares[0]["weights"][key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "launch, script, extra",
    [
        (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], "hf_trainer.py",
         ["--steps", "20", "--reference-steps", "10", "--pool", "2000"]),
        ([], "lightning_callback.py", ["--steps", "20", "--reference-epochs", "1", "--devices", "2"]),
    ],
)  # fmt: skip
def test_the_trainer_examples_run_on_two_cpu_processes(launch, script, extra):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("transformers" if script == "hf_trainer.py" else "lightning")
    path = Path(__file__).resolve().parent.parent / "examples" / script
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, *launch, str(path), *extra], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("clean test accuracy") == 1  # rank 0 reports
