"""JEST through the engine: pair methods, cheap scoring, multi-resolution training, the loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siftdata._ids import IdIndex
from siftdata.core.pairwise import PairEmbeddings, per_example_sigmoid_loss
from siftdata.online import select_batch
from siftdata.online.approximation import LowResolution, MultiResolution, downsample
from siftdata.online.joint import JointSampler
from siftdata.online.pair_methods import (
    PAIR_METHOD_NAMES,
    PairSelectionConfig,
    build_pair_method,
    pair_method_uses_reference,
)
from siftdata.scoring.pair_scorers import PairScorer
from siftdata.scoring.scorers import Need
from siftdata.training.diagnostics import count_host_syncs
from siftdata.training.loop import TrainConfig, TrainData, train

N, VOCAB, L = 300, 12, 5


class _Towers(nn.Module):
    """A tiny two-tower model that takes 28×28 or 14×14 images and has an early-exit head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head, self.early = nn.Linear(4 * 4 * 4, 8), nn.Linear(4, 8)
        self.words = nn.EmbeddingBag(VOCAB, 8, padding_idx=0)
        self.log_scale, self.bias = (
            nn.Parameter(torch.tensor(2.3)),
            nn.Parameter(torch.tensor(-5.0)),
        )
        self.calls: list[tuple[int, bool]] = []

    def forward(self, inputs, *, early_exit: bool = False) -> PairEmbeddings:
        images, tokens = inputs
        self.calls.append((images.shape[-1], early_exit))
        h = F.relu(self.conv(images))
        if early_exit:
            image = self.early(h.mean(dim=(2, 3)))
        else:
            image = self.head(F.adaptive_avg_pool2d(h, 4).flatten(1))
        text = self.words(tokens)
        return PairEmbeddings(
            F.normalize(image, dim=1), F.normalize(text, dim=1), self.log_scale.exp(), self.bias
        )


def _towers(seed: int = 0) -> _Towers:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _Towers()


def _pairs(n: int = N):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randn(n, 1, 28, 28, generator=g) + labels[:, None, None, None].float()
    tokens = torch.stack([labels + 1, labels + 5, torch.zeros_like(labels)], 1)
    tokens = F.pad(tokens, (0, L - 3))
    mismatched = torch.zeros(n, dtype=torch.bool)
    mismatched[: n // 3] = True
    tokens[: n // 3, 0] = (labels[: n // 3] + 1) % 4 + 1
    return images, tokens, labels, mismatched


class _Lookup:
    """Reference embeddings by id, the interface :class:`PairScorer` needs."""

    def __init__(self, ids: torch.Tensor, emb: PairEmbeddings) -> None:
        self.index, self.emb = IdIndex(ids), emb

    def lookup(self, ids):
        return self.emb.index_select(self.index.rows(ids))

    def check_ids(self, ids):
        self.index.rows(ids, check_values=True)

    def __repr__(self):
        return "_Lookup()"


def _reference(images, tokens):
    with torch.no_grad():
        emb = _towers(seed=7)((images, tokens))
    return _Lookup(torch.arange(images.shape[0]), emb)


def _data():
    images, tokens, labels, mismatched = _pairs()
    return TrainData(
        inputs=(images, tokens),
        labels=labels,
        test_inputs=(images[:50], tokens[:50]),
        test_labels=labels[:50],
        is_corrupted=mismatched,
    ), _reference(images, tokens)


def _evaluator(model):
    return {"test_acc": 0.0, "test_loss": 0.0}


def _config(**kw):
    base = dict(
        steps=12, batch_size=16, super_batch_factor=5.0, eval_every=6, lr=1e-3, progress=False
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("name", PAIR_METHOD_NAMES)
def test_every_pair_method_trains_through_the_loop(name):
    data, reference = _data()
    method = build_pair_method(
        name,
        config=PairSelectionConfig(chunks=4),
        reference=reference if pair_method_uses_reference(name) else None,
    )
    result = train(
        _towers(),
        method,
        data,
        _config(),
        loss_fn=per_example_sigmoid_loss,
        evaluator=_evaluator,
    )
    assert result.steps == 12 and result.records[-1]["mislabeled_selected"] is not None


def test_easy_reference_needs_no_learner_forward_and_jest_flexi_scores_at_low_resolution():
    data, reference = _data()
    model = _towers()
    easy = build_pair_method("easy-reference", reference=reference)
    assert Need.OUTPUTS not in easy.scorer.needs and not easy.needs_forward
    train(
        model, easy, data, _config(steps=3), loss_fn=per_example_sigmoid_loss, evaluator=_evaluator
    )
    assert all(size == 28 for size, _ in model.calls)  # training only: no scoring forward

    model = _towers()
    config = PairSelectionConfig(chunks=4, early_exit=True, low_res_share=0.25)
    flexi = build_pair_method("jest-flexi", config=config, reference=reference)
    train(
        model, flexi, data, _config(steps=3), loss_fn=per_example_sigmoid_loss, evaluator=_evaluator
    )
    # scoring (low, early exit), then training: the low share through the early-exit head too
    assert model.calls[:3] == [(14, True), (14, True), (28, False)]


def test_multi_resolution_spreads_the_low_share_and_computes_one_loss():
    model = _towers()
    images, tokens, labels, _ = _pairs(10)
    multi = MultiResolution(share=0.3, factor=2)
    assert multi.low_positions(10).tolist() == [0, 3, 6]  # spread, not the first chunk
    losses = multi.losses(model, (images, tokens), labels, per_example_sigmoid_loss)
    low, full = torch.tensor([0, 3, 6]), torch.tensor([1, 2, 4, 5, 7, 8, 9])
    a = model((downsample(images[low], 2), tokens[low]))
    b = model((images[full], tokens[full]))
    order = torch.argsort(torch.cat([low, full]))
    together = PairEmbeddings(
        torch.cat([a.image, b.image])[order], torch.cat([a.text, b.text])[order], b.scale, b.bias
    )  # every pair keeps all the others as negatives, across resolutions
    torch.testing.assert_close(losses, per_example_sigmoid_loss(together))
    assert multi.split(2) == 1 and multi.split(100) == 30
    logits = multi.losses(
        lambda x: x.flatten(1)[:, :3], images, labels, lambda out, y: out.sum(1)
    )  # plain tensor outputs are merged in order too
    assert logits.shape == (10,)
    with pytest.raises(ValueError, match="share"):
        MultiResolution(share=1.0)
    with pytest.raises(ValueError, match="nothing to approximate"):
        LowResolution(factor=1)


@pytest.mark.parametrize("total, ranks", [(10, 2), (64, 4), (12, 3), (30, 5)])
def test_a_ranks_low_resolution_positions_are_the_whole_batchs_in_its_share(total, ranks):
    multi = MultiResolution(share=0.3, factor=2)
    n = total // ranks
    shares = [multi.low_positions(n, part=(r * n, total)) + r * n for r in range(ranks)]
    assert torch.cat(shares).tolist() == multi.low_positions(total).tolist()


def test_a_share_without_both_resolutions_is_refused():
    images, tokens, labels, _ = _pairs(2)
    multi = MultiResolution(share=0.3, factor=2)  # of 10, positions 0, 3, 6: none in 8-9
    with pytest.raises(
        ValueError, match="both resolutions in a batch \\(or a rank's share\\) of 2"
    ):
        multi.losses(_towers(), (images, tokens), labels, per_example_sigmoid_loss, part=(8, 10))


def test_downsample_pools_images_only():
    images, tokens = torch.arange(16.0).reshape(1, 1, 4, 4), torch.ones(1, 3, dtype=torch.long)
    low, same = downsample((images, tokens), 2)
    assert low.shape == (1, 1, 2, 2) and float(low[0, 0, 0, 0]) == (0 + 1 + 4 + 5) / 4
    assert same is tokens
    with pytest.raises(ValueError, match="N, C, H, W"):
        downsample(torch.zeros(3, 4), 2)


def test_jest_step_makes_no_host_sync():
    images, tokens, labels, _ = _pairs(200)
    reference = _reference(images, tokens)
    model, ids = _towers(), torch.arange(200)
    scorer = PairScorer("learnability", reference=reference)
    selector = JointSampler(chunks=8)

    def step():
        return select_batch(
            model, (images, tokens), labels, ids, k=40, scorer=scorer, selector=selector
        )

    step()
    with count_host_syncs() as syncs:
        selection = step()
    assert syncs.total == 0, syncs.counts
    assert selection.indices.unique().numel() == 40


def test_pair_scorer_matrix_free_and_dense_choose_the_same():
    images, tokens, labels, _ = _pairs(120)
    reference, model, ids = _reference(images, tokens), _towers(), torch.arange(120)
    picks = []
    for free in (True, False):
        scorer = PairScorer("learnability", reference=reference, matrix_free=free)
        sel = select_batch(
            model,
            (images, tokens),
            labels,
            ids,
            k=30,
            scorer=scorer,
            selector=JointSampler(chunks=6),
        )
        picks.append(sel.indices)
    assert torch.equal(*picks)


def test_pair_scorer_refuses_bad_input():
    with pytest.raises(ValueError, match="criterion must be one of"):
        PairScorer("jest")  # a method, not a criterion
    with pytest.raises(ValueError, match="reference's cached embeddings"):
        PairScorer("learnability")
    from siftdata.scoring.scorers import ScoringBatch

    scorer = PairScorer("hard-learner")
    with pytest.raises(ValueError, match="PairEmbeddings"):
        scorer(ScoringBatch(ids=torch.arange(3), outputs=torch.zeros(3, 4)))
    with pytest.raises(ValueError, match="unknown pair method"):
        build_pair_method("learnability-topk")


@pytest.mark.parametrize("name", ["jest", "jest-flexi", "easy-reference"])
def test_pair_methods_make_no_host_sync_between_steps(name):
    data, reference = _data()
    method = build_pair_method(name, config=PairSelectionConfig(chunks=4), reference=reference)
    counts = []

    def count_between_steps(step, ids):
        if step >= 2:
            counts.append(counter.total)

    with count_host_syncs() as counter:
        train(
            _towers(),
            method,
            data,
            _config(steps=30, eval_every=100),  # past an epoch boundary (N = 300, B = 80)
            loss_fn=per_example_sigmoid_loss,
            evaluator=_evaluator,
            on_step=count_between_steps,
        )
    assert counts[0] == counts[-1], counter.counts
