"""Tests for the two-tower model, its evaluator and SigLIP training (tiny models, random data)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siftdata.core.pairwise import PairEmbeddings, per_example_sigmoid_loss
from siftdata.models import TwoTower
from siftdata.reference.pair_training import pair_flops, siglip_optimizer, train_two_tower
from siftdata.training.pair_eval import PairEvaluator

VOCAB, L = 12, 8


def _model(seed: int = 0, **kwargs) -> TwoTower:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kwargs = {"embed_dim": 16, "max_tokens": L, **kwargs}
        return TwoTower(VOCAB, **kwargs)


def _tokens(n: int, seed: int = 0) -> torch.Tensor:
    """Captions of 1 to L-2 real tokens followed by padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCAB, (n, L), generator=g)
    lengths = torch.randint(1, L - 1, (n, 1), generator=g)
    return tokens.masked_fill(torch.arange(L) >= lengths, 0)


def _images(n: int, side: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, side, side, generator=torch.Generator().manual_seed(seed))


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [28, 14])
def test_both_resolutions_give_normalised_embeddings(side):
    emb = _model()((_images(5, side), _tokens(5)))
    assert isinstance(emb, PairEmbeddings)
    assert emb.image.shape == emb.text.shape == (5, 16)
    for x in (emb.image, emb.text):
        torch.testing.assert_close(x.norm(dim=1), torch.ones(5))


def test_siglip_initial_temperature_and_bias():
    emb = _model()((_images(2), _tokens(2))).detach()
    assert float(emb.scale) == pytest.approx(10.0)
    assert float(emb.bias) == -10.0
    assert emb.scale.dim() == emb.bias.dim() == 0


def test_early_exit_shape_and_differs_from_full_path():
    model, images = _model(), _images(6)
    early = model.encode_images(images, early_exit=True)
    full = model.encode_images(images)
    assert early.shape == full.shape == (6, 16)
    torch.testing.assert_close(early.norm(dim=1), torch.ones(6))
    assert not torch.allclose(early, full)
    # forward passes it through; the text tower is unchanged
    out = model((images, _tokens(6)), early_exit=True)
    torch.testing.assert_close(out.image, early)
    torch.testing.assert_close(out.text, model.encode_texts(_tokens(6)))


def test_early_exit_skips_the_later_blocks():
    model = _model()
    for block in (model.block2, model.block3):
        block.register_forward_hook(lambda *a: pytest.fail("a later block ran"))
    model.encode_images(_images(3, 14), early_exit=True)


def test_extra_padding_does_not_change_the_text_embedding():
    model, tokens = _model(), _tokens(7)
    base = model.encode_texts(tokens)
    torch.testing.assert_close(model.encode_texts(tokens[:, : L - 2]), base)  # all-padding tail
    short = _model(max_tokens=2 * L)
    torch.testing.assert_close(
        short.encode_texts(F.pad(tokens, (0, L))), short.encode_texts(tokens)
    )


def test_word_order_and_words_matter():
    model = _model()
    tokens = torch.tensor([[3, 5, 7, 0], [7, 5, 3, 0], [3, 5, 8, 0]])
    out = model.encode_texts(tokens)
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(out[0], out[2])


def test_too_many_tokens_and_bad_arguments_are_refused():
    model = _model()
    with pytest.raises(ValueError, match="max_tokens"):
        model.encode_texts(torch.ones(2, L + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="images"):
        model.encode_images(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="vocab_size"):
        TwoTower(1)
    with pytest.raises(ValueError, match="width"):
        TwoTower(VOCAB, width=0.0)
    with pytest.raises(ValueError, match="max_tokens"):
        TwoTower(VOCAB, max_tokens=0)


def test_width_scales_the_model_and_train_equals_eval():
    small, big = _model(width=0.5), _model(width=2.0)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(_model()) < count(big)
    model, x = _model(), (_images(4), _tokens(4))
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    torch.testing.assert_close(train_out.image, eval_out.image)


def test_pair_flops_early_exit_is_cheaper():
    model, images, tokens = _model(), _images(8), _tokens(8)
    full = pair_flops(model, images, tokens)
    assert full > 0
    assert pair_flops(model, images[:4], tokens[:4]) * 2 == full
    low = pair_flops(model, F.avg_pool2d(images, 2), tokens)
    assert low < full


# --- the evaluator ---------------------------------------------------------------------------

E = torch.tensor(  # token id → text direction (row 0: padding)
    [[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
)


class _Stub(nn.Module):
    """Embeddings chosen by hand: an image ``(1, 1, 6)`` holds its embedding (first 3 values)
    and an offset added to its caption's text embedding (last 3), so two copies of a caption
    can have different embeddings; a text is the normalised sum of its tokens' rows of ``E``."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Linear(1, 1)  # a parameter, for the device
        self.child = nn.Linear(1, 1)

    def encode_texts(self, tokens):
        return F.normalize(E[tokens].sum(dim=1), dim=1)

    def forward(self, inputs):
        images, tokens = inputs
        flat = images.flatten(1)
        text = F.normalize(E[tokens].sum(dim=1) + flat[:, 3:], dim=1)
        return PairEmbeddings(
            F.normalize(flat[:, :3], dim=1), text, torch.tensor(10.0), torch.tensor(-10.0)
        )


def _stub_test_set():
    e0, e1, e2 = torch.eye(3)
    x = [  # (image embedding, caption offset)
        (e0, 0 * e0),  # 0: caption [1] = e0
        (e0 + 0.2 * e2, 0.5 * e1),  # 1: caption [1] too; retrieves caption 0 (a copy): a hit
        (e1, 0 * e0),  # 2: caption [2]
        (e1 + 0.3 * e0, 0 * e0),  # 3: caption [3]; retrieves caption 2: a miss
        (0.5 * e1 + e2, 0 * e0),  # 4: caption [2, 3]
    ]
    images = torch.stack([torch.cat([a, b]) for a, b in x]).reshape(5, 1, 1, 6)
    tokens = torch.tensor([[1, 0], [1, 0], [2, 0], [3, 0], [2, 3]])
    labels = torch.tensor([0, 0, 1, 2, 2])
    # class 0: prompts e0, e0; class 1: e1 and e2, mean (e1+e2)/√2; class 2: e2, e2
    prompts = torch.tensor([[[1, 0], [1, 0]], [[2, 0], [4, 0]], [[3, 0], [3, 0]]])
    return images, tokens, labels, prompts


def test_evaluator_known_predictions_and_duplicate_captions():
    images, tokens, labels, prompts = _stub_test_set()
    metrics = PairEvaluator(images, tokens, labels, prompts)(_Stub())
    # predictions: 0, 0, 1, 1 (e1 + 0.3 e0 is nearer (e1+e2)/√2 than e0), and 1 for image 4
    # (0.5 e1 + e2 scores 1.06 against the renormalised mean of class 1, 1.0 against class 2):
    # 3 of 5 right
    assert metrics["test_acc"] == pytest.approx(3 / 5)
    # hits: 0, 1 (a copy of its caption), 2, 4; image 3 retrieves caption [2]
    assert metrics["recall_at_1"] == pytest.approx(4 / 5)
    emb = _Stub()((images, tokens))
    assert metrics["test_loss"] == pytest.approx(float(per_example_sigmoid_loss(emb).mean()))


def test_evaluator_blockwise_equals_unblocked_computation():
    n, model = 37, _model()
    images, tokens = _images(n), _tokens(n)
    tokens[5], tokens[20] = tokens[3], tokens[3]  # some duplicate captions
    labels = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(1))
    prompts = _tokens(12, seed=2).reshape(4, 3, L)
    blocked = PairEvaluator(images, tokens, labels, prompts, batch_size=5)(model)
    whole = PairEvaluator(images, tokens, labels, prompts, batch_size=n)(model)
    # the slow, obvious computation, all at once
    with torch.no_grad():
        emb = model((images, tokens)).detach()
        classes = F.normalize(model.encode_texts(prompts.reshape(12, L)).reshape(4, 3, -1).mean(1))
        acc = ((emb.image @ classes.T).argmax(1) == labels).float().mean()
        retrieved = (emb.image @ emb.text.T).argmax(1)
        recall = (tokens[retrieved] == tokens).all(dim=1).float().mean()
        batch_losses = [
            per_example_sigmoid_loss(model((images[s : s + 5], tokens[s : s + 5])))
            for s in range(0, n, 5)
        ]
    for out in (blocked, whole):
        assert out["test_acc"] == pytest.approx(float(acc))
        assert out["recall_at_1"] == pytest.approx(float(recall))
    assert whole["test_loss"] == pytest.approx(
        float(per_example_sigmoid_loss(emb).mean()), rel=1e-5
    )
    assert blocked["test_loss"] == pytest.approx(float(torch.cat(batch_losses).mean()), rel=1e-5)


def test_evaluator_restores_modes_and_needs_no_grad():
    images, tokens, labels, prompts = _stub_test_set()
    model = _Stub().train()
    model.child.eval()
    PairEvaluator(images, tokens, labels, prompts, batch_size=2)(model)
    assert model.training and not model.child.training


def test_evaluator_refuses_bad_inputs():
    images, tokens, labels, prompts = _stub_test_set()
    with pytest.raises(ValueError, match="test_tokens"):
        PairEvaluator(images, tokens[:3], labels, prompts)
    with pytest.raises(ValueError, match="test_labels"):
        PairEvaluator(images, tokens, labels.float(), prompts)
    with pytest.raises(ValueError, match="prompt_tokens"):
        PairEvaluator(images, tokens, labels, prompts[0])
    with pytest.raises(ValueError, match="batch_size"):
        PairEvaluator(images, tokens, labels, prompts, batch_size=0)


# --- SigLIP training -------------------------------------------------------------------------


def _toy(n: int = 64):
    """Separable pairs: four classes, each with its own bright quadrant and its own word."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(n) % 4
    images = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    for c in range(4):
        r, q = divmod(c, 2)
        images[labels == c, :, 14 * r : 14 * r + 14, 14 * q : 14 * q + 14] += 2.0
    tokens = torch.zeros(n, 4, dtype=torch.long)
    tokens[:, 0], tokens[:, 1] = 1, labels + 2
    return images, tokens


def _loss(model, images, tokens, batch=16):
    with torch.no_grad():
        parts = [
            per_example_sigmoid_loss(model((images[s : s + batch], tokens[s : s + batch])))
            for s in range(0, images.shape[0], batch)
        ]
    return float(torch.cat(parts).mean())


def test_train_two_tower_lowers_the_loss():
    images, tokens = _toy()
    model = _model(width=0.5)
    before = _loss(model, images, tokens)
    out = train_two_tower(model, images, tokens, steps=80, batch_size=16, lr=5e-3)
    assert set(out) == {"flops", "seconds", "final_loss"}
    assert _loss(model, images, tokens) < 0.5 * before
    assert out["final_loss"] < 0.5 * before
    assert out["seconds"] > 0 and out["flops"] > 0


def test_train_two_tower_is_deterministic_for_a_seed():
    images, tokens = _toy()
    runs = []
    for seed in (0, 0, 1):
        model = _model(width=0.5)
        out = train_two_tower(model, images, tokens, steps=6, batch_size=16, seed=seed)
        runs.append((out["final_loss"], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][k], v, rtol=0, atol=0)
    assert runs[2][0] != runs[0][0]


def test_train_two_tower_flops_are_per_step_and_modes_restored():
    images, tokens = _toy()
    model = _model(width=0.5).eval()
    one = train_two_tower(model, images, tokens, steps=1, batch_size=16)["flops"]
    three = train_two_tower(model, images, tokens, steps=3, batch_size=16)["flops"]
    assert three == 3 * one
    assert not model.training
    forward = pair_flops(model, images[:16], tokens[:16])
    assert 2 * forward < one < 4 * forward  # forward + backward


def test_train_two_tower_leaves_the_global_rng_alone():
    images, tokens = _toy()
    state = torch.random.get_rng_state()
    train_two_tower(_model(width=0.5), images, tokens, steps=2, batch_size=16, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 1, "batch_size": 65}, "batch_size"),
        ({"steps": 1, "batch_size": 1}, "batch_size"),
        ({"steps": 1, "batch_size": 16, "lr": 0.0}, "lr"),
        ({"steps": 1, "batch_size": 16, "weight_decay": -1.0}, "weight_decay"),
        ({"steps": 1, "batch_size": 16, "seed": -1}, "seed"),
    ],
)
def test_train_two_tower_refuses_bad_arguments(kwargs, match):
    images, tokens = _toy()
    with pytest.raises(ValueError, match=match):
        train_two_tower(_model(width=0.5), images, tokens, **kwargs)
    with pytest.raises(ValueError, match="same pairs"):
        train_two_tower(_model(width=0.5), images, tokens[:10], steps=1, batch_size=8)


def test_only_weight_matrices_are_weight_decayed():
    model = _model(width=0.5)
    optimizer = siglip_optimizer(model, lr=1e-3, weight_decay=0.5)
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.log_scale) not in decay and id(model.bias) not in decay
    assert id(model.image_head.bias) not in decay
    assert id(model.image_head.weight) in decay and id(model.words.weight) in decay
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
