"""SVP pieces: recipes, the timed fit with forgetting, dataset scoring (resumable), proxy scores."""

import math

import pytest
import torch

from siftdata.offline import (
    ForgettingTracker,
    Recipe,
    fit,
    forgetting_scores,
    k_center_greedy,
    kcenter_scores,
    parse_score_names,
    score_dataset,
    score_with_recipe,
    select_subset,
)
from siftdata.offline.scoring import model_digest
from siftdata.scoring.scorers import Entropy, GradNormBound, LearnerLoss, LeastConfidence, Margin


def _blobs(n=240, seed=0):
    """Two-class-per-blob toy images: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.5
    x[torch.arange(n), 0, y, y] += 4.0
    return x, y


TINY = Recipe(model="mlp", width=0.1, epochs=2, batch_size=32, lr=5e-3)


def test_recipe_proxy_changes_only_what_it_is_told():
    target = Recipe(model="cnn", width=1.0, epochs=6, lr=1e-3)
    proxy = target.proxy(model="mlp", epochs=2)
    assert (proxy.model, proxy.width, proxy.epochs, proxy.lr) == ("mlp", 1.0, 2, 1e-3)
    assert target.proxy() == target
    for bad in ({"epochs": 0}, {"width": 0.0}, {"model": "resnet"}, {"schedule": "step"}):
        with pytest.raises(ValueError):
            Recipe(**bad)


def test_fit_is_seeded_and_tracks_forgetting_on_the_training_forward():
    x, y = _blobs()
    a = fit(TINY, x, y, seed=3, track_forgetting=True, progress=False)
    b = fit(TINY, x, y, seed=3, track_forgetting=True, progress=False)
    assert model_digest(a.model) == model_digest(b.model)
    assert a.steps == 2 * math.ceil(240 / 32) and a.examples == 240 and a.seconds > 0
    assert torch.equal(a.forgetting.presented, torch.full((240,), 2))  # every example, each epoch
    assert torch.equal(a.forgetting.forgotten, b.forgetting.forgotten)
    c = fit(TINY, x, y, seed=4, progress=False)
    assert model_digest(c.model) != model_digest(a.model) and c.forgetting is None


def test_fit_refuses_bad_data_and_reports_divergence():
    x, y = _blobs(40)
    with pytest.raises(ValueError, match="empty"):
        fit(TINY, x[:0], y[:0], seed=0, progress=False)
    with pytest.raises(ValueError, match="one row per label"):
        fit(TINY, x[:10], y, seed=0, progress=False)
    with pytest.raises(ValueError, match="integers"):
        fit(TINY, x, y.float(), seed=0, progress=False)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="diverged"):
        fit(TINY, bad, y, seed=0, progress=False)


def test_scores_against_hand_computed_values():
    # p = softmax([0, ln 3]) = (1/4, 3/4), label 0
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    model = torch.nn.Linear(1, 2, dtype=torch.float64)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(logits[0])
    x, y = torch.zeros(1, 1, dtype=torch.float64), torch.tensor([0])
    scorers = {
        "lc": LeastConfidence(),
        "entropy": Entropy(),
        "margin": Margin(),
        "el2n": GradNormBound(),
        "loss": LearnerLoss(),
    }
    got = {
        k: float(v) for k, v in score_dataset(model, x, y, scorers, progress=False).scores.items()
    }
    assert got["lc"] == pytest.approx(0.25)
    assert got["entropy"] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert got["margin"] == pytest.approx(0.5)
    assert got["el2n"] == pytest.approx(math.sqrt(0.75**2 + 0.75**2))
    assert got["loss"] == pytest.approx(math.log(4.0))


def test_entropy_is_finite_when_a_probability_underflows_to_zero():
    model = torch.nn.Linear(1, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, -1e4, 1e4]))  # p = (0, 0, 1) in float32
    scored = score_dataset(model, torch.zeros(2, 1), None, {"h": Entropy()}, progress=False)
    assert torch.equal(scored.scores["h"], torch.zeros(2))


def _mlp():
    return fit(TINY, *_blobs(), seed=0, progress=False).model


def test_scoring_matches_one_batch_for_any_batch_and_shard_size(tmp_path):
    model, (x, y) = _mlp(), _blobs()
    scorers = {"lc": LeastConfidence(), "el2n": GradNormBound(), "loss": LearnerLoss()}
    whole = score_dataset(model, x, y, scorers, embeddings=True, batch_size=1000, progress=False)
    with torch.no_grad():
        h = model.features(x)
        assert torch.allclose(whole.embeddings, h)
    parts = score_dataset(
        model,
        x,
        y,
        scorers,
        embeddings=True,
        batch_size=7,
        shard_dir=tmp_path / "s",
        shard_size=50,
        progress=False,
    )
    for name in scorers:
        assert torch.allclose(parts.scores[name], whole.scores[name], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "s").glob("shard-*.pt")) == [
        f"shard-{i:05d}.pt" for i in range(5)
    ]


class _Flaky(LeastConfidence):
    """Raises on its ``fail_at``-th call, like an interrupted job; counts its calls."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return super().__call__(batch)


def test_interrupted_scoring_resumes_from_finished_shards(tmp_path):
    model, (x, y) = _mlp(), _blobs()
    options = {"batch_size": 20, "shard_size": 60, "progress": False}
    expected = score_dataset(model, x, y, {"lc": LeastConfidence()}, **options).scores["lc"]
    flaky = _Flaky(fail_at=8)  # 3 batches per shard: shards 0 and 1 finish, shard 2 is cut
    with pytest.raises(KeyboardInterrupt):
        score_dataset(model, x, y, {"lc": flaky}, shard_dir=tmp_path, **options)
    assert len(list(tmp_path.glob("shard-*.pt"))) == 2
    again = _Flaky()
    resumed = score_dataset(model, x, y, {"lc": again}, shard_dir=tmp_path, **options)
    assert resumed.resumed == 120 and again.calls == 6  # only shards 2 and 3 were scored
    loaded = _Flaky()
    cached = score_dataset(model, x, y, {"lc": loaded}, shard_dir=tmp_path, **options)
    assert loaded.calls == 0 and cached.resumed == 240
    assert cached.seconds == pytest.approx(resumed.seconds)  # saved shards keep their time
    assert torch.equal(resumed.scores["lc"], expected)


def test_shard_folder_of_another_model_or_corrupt_shard_is_refused(tmp_path):
    model, (x, y) = _mlp(), _blobs()
    options = {"shard_dir": tmp_path, "shard_size": 100, "progress": False}
    score_dataset(model, x, y, {"lc": LeastConfidence()}, **options)
    other = fit(TINY, x, y, seed=9, progress=False).model
    with pytest.raises(ValueError, match="model_sha256"):
        score_dataset(other, x, y, {"lc": LeastConfidence()}, **options)
    with pytest.raises(ValueError, match="data"):
        score_dataset(model, x, (y + 1) % 10, {"lc": LeastConfidence()}, **options)
    (tmp_path / "shard-00001.pt").write_bytes(b"not a shard")
    with pytest.raises(ValueError, match="corrupt"):
        score_dataset(model, x, y, {"lc": LeastConfidence()}, **options)


def test_scoring_bad_input():
    model, (x, y) = _mlp(), _blobs(20)
    with pytest.raises(ValueError, match="nothing to compute"):
        score_dataset(model, x, y, {}, progress=False)
    with pytest.raises(ValueError, match="labels"):
        score_dataset(model, x, None, {"loss": LearnerLoss()}, progress=False)
    with pytest.raises(ValueError, match="shape"):
        score_dataset(model, x, y[:5], {"lc": LeastConfidence()}, progress=False)
    with pytest.raises(ValueError, match="not a Scorer"):
        score_dataset(model, x, y, {"lc": lambda b: b}, progress=False)
    nan = x.clone()
    nan[3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        score_dataset(model, nan, y, {"lc": Entropy()}, progress=False)
    with pytest.raises(ValueError, match="features"):
        score_dataset(torch.nn.Linear(784, 10), x.flatten(1), y, {}, embeddings=True)


def test_forgetting_scores_put_never_learned_above_any_count():
    tracker = ForgettingTracker(4)
    history = [[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 1, 1]]  # per presentation
    for correct in history:
        tracker.update(torch.arange(4), torch.tensor(correct, dtype=torch.bool))
    # example 0: 1→0, 1→0: 2 events; 1: never learned; 2: one 1→0; 3: one 1→0
    assert forgetting_scores(tracker).tolist() == [2.0, 4.0, 1.0, 1.0]


def test_kcenter_ranking_keeps_the_greedy_core_set_under_the_hardest_policy():
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scores = kcenter_scores(x, 50, seed=5)
    for k in (1, 10, 50):
        kept = select_subset(scores, policy="hardest", budget=k)
        assert torch.equal(kept, torch.sort(k_center_greedy(x, k, seed=5)).values)
    assert int((scores > 0).sum()) == 50


def test_score_with_recipe_gives_every_score_finite_and_timed():
    x, y = _blobs(120)
    run = score_with_recipe(
        TINY,
        x,
        y,
        ["kcenter", "margin", "el2n", "forgetting"],
        seed=0,
        el2n_runs=2,
        kcenter_picks=30,
        progress=False,
    )
    assert list(run.scores) == ["kcenter", "margin", "el2n", "forgetting"]
    for values in run.scores.values():
        assert values.shape == (120,) and bool(torch.isfinite(values).all())
    assert set(run.seconds) == {"train", "score", "kcenter", "el2n_train", "el2n_score"}
    assert run.cost("forgetting")["scoring"] == 0.0
    assert run.cost("el2n")["training"] == run.seconds["el2n_train"]
    assert run.cost("kcenter")["selection"] == run.seconds["kcenter"]


def test_parse_score_names():
    assert parse_score_names("el2n, margin,el2n") == ("el2n", "margin")
    for bad in ("", "el2n,grand", ()):
        with pytest.raises(ValueError, match="scores must be"):
            parse_score_names(bad)
