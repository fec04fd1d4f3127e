"""Tests for the reference-embeddings cache: embedding pairs, lookup by id, the store on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from siftdata.core.pairwise import PairEmbeddings
from siftdata.models import TwoTower
from siftdata.reference.embeddings import (
    REFERENCE_EMBEDDINGS_KIND,
    ReferenceEmbeddings,
    embed_pairs,
    load_reference_embeddings,
    save_reference_embeddings,
)
from siftdata.store import dataset_fingerprint, load_scores, save_scores
from siftdata.training.diagnostics import count_host_syncs

N, VOCAB, L, D = 23, 10, 5, 8


def _model() -> TwoTower:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TwoTower(VOCAB, embed_dim=D, width=0.5, max_tokens=L)


def _pairs(n: int = N):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 1, 28, 28, generator=g)
    tokens = torch.randint(0, VOCAB, (n, L), generator=g)
    return images, tokens


def _emb(n: int = N, seed: int = 0) -> PairEmbeddings:
    g = torch.Generator().manual_seed(seed)
    image, text = (torch.nn.functional.normalize(torch.randn(n, D, generator=g)) for _ in "it")
    return PairEmbeddings(image, text, torch.tensor(9.5), torch.tensor(-8.25))


def _ids(n: int = N) -> torch.Tensor:
    """Sparse ids in a shuffled order (not 0..N-1)."""
    return 100 + 3 * torch.randperm(n, generator=torch.Generator().manual_seed(1))


def _fingerprint():
    images, tokens = _pairs()
    return dataset_fingerprint(torch.zeros(N, dtype=torch.long), (images, tokens))


# --- embed_pairs -----------------------------------------------------------------------------


def test_embed_pairs_equals_one_forward_and_restores_modes():
    model, (images, tokens) = _model(), _pairs()
    model.train()
    model.block1.eval()
    out = embed_pairs(model, images, tokens, batch_size=7)
    assert model.training and not model.block1.training
    with torch.no_grad():
        whole = model((images, tokens))
    torch.testing.assert_close(out.image, whole.image)
    torch.testing.assert_close(out.text, whole.text)
    assert float(out.scale) == pytest.approx(10.0) and float(out.bias) == -10.0
    assert not (out.image.requires_grad or out.scale.requires_grad or out.bias.requires_grad)
    assert out.scale.dim() == 0 and len(out) == N


def test_embed_pairs_refuses_bad_inputs():
    model, (images, tokens) = _model(), _pairs()
    with pytest.raises(ValueError, match="same pairs"):
        embed_pairs(model, images, tokens[:3])
    with pytest.raises(ValueError, match="at least one"):
        embed_pairs(model, images[:0], tokens[:0])
    with pytest.raises(ValueError, match="batch_size"):
        embed_pairs(model, images, tokens, batch_size=0)


# --- ReferenceEmbeddings ---------------------------------------------------------------------


def test_lookup_by_permuted_ids():
    ids, emb = _ids(), _emb()
    table = ReferenceEmbeddings(ids, emb)
    assert len(table) == N and table.width == D
    want = torch.randperm(N, generator=torch.Generator().manual_seed(2))[:9]
    out = table.lookup(ids[want])
    torch.testing.assert_close(out.image, emb.image[want], rtol=0, atol=0)
    torch.testing.assert_close(out.text, emb.text[want], rtol=0, atol=0)
    assert float(out.scale) == 9.5 and float(out.bias) == -8.25
    assert out.image.is_contiguous() and out.text.is_contiguous()
    torch.testing.assert_close(table.all().image, emb.image)


def test_lookup_makes_no_host_sync():
    ids, emb = _ids(), _emb()
    table = ReferenceEmbeddings(ids, emb)
    batch = ids[:5].clone()
    with count_host_syncs() as syncs:
        table.lookup(batch)
    assert syncs.total == 0, syncs.counts


def test_missing_ids_are_named():
    table = ReferenceEmbeddings(_ids(), _emb())
    unknown = torch.tensor([100, 101, 5000])
    with pytest.raises(ValueError, match="2 id"):
        table.check_ids(unknown)
    with pytest.raises(ValueError, match="not in the table"):
        table.lookup(unknown, check_values=True)
    table.check_ids(_ids()[:4])  # known ids pass


def test_to_device_and_bad_construction():
    table = ReferenceEmbeddings(_ids(), _emb())
    moved = table.to("cpu")
    assert moved.device == torch.device("cpu") and repr(moved) == repr(table)
    torch.testing.assert_close(moved.lookup(_ids()[:3]).text, table.lookup(_ids()[:3]).text)
    with pytest.raises(ValueError, match="one id per embedding"):
        ReferenceEmbeddings(_ids()[:5], _emb())
    with pytest.raises(ValueError, match="PairEmbeddings"):
        ReferenceEmbeddings(_ids(), torch.zeros(N, 2 * D))
    with pytest.raises(ValueError, match="unique"):
        ReferenceEmbeddings(torch.zeros(N, dtype=torch.long) + torch.arange(N) // 2, _emb())


def test_repr_names_the_content():
    ids = _ids()
    first, same, other = (ReferenceEmbeddings(ids, _emb(seed=s)) for s in (0, 0, 1))
    assert repr(first) == repr(same)
    assert repr(first) != repr(other)
    assert "sha256" in repr(first) and f"{N} examples" in repr(first)
    swapped_bias = PairEmbeddings(_emb().image, _emb().text, torch.tensor(9.5), torch.tensor(0.0))
    assert repr(ReferenceEmbeddings(ids, swapped_bias)) != repr(first)


# --- the store on disk -----------------------------------------------------------------------


def test_round_trip(tmp_path):
    ids, emb, fp = _ids(), _emb(), _fingerprint()
    path = save_reference_embeddings(tmp_path / "ref", ids, emb, fingerprint=fp, meta={"steps": 3})
    loaded = load_reference_embeddings(path, fingerprint=fp)
    assert isinstance(loaded, ReferenceEmbeddings)
    assert len(loaded) == N and loaded.width == D
    assert loaded.manifest["kind"] == REFERENCE_EMBEDDINGS_KIND
    assert loaded.manifest["meta"] == {"steps": 3, "width": D, "scale": 9.5, "bias": -8.25}
    assert repr(loaded) == repr(ReferenceEmbeddings(ids, emb))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    out = loaded.lookup(ids[perm])
    torch.testing.assert_close(out.image, emb.image[perm], rtol=0, atol=0)
    torch.testing.assert_close(out.text, emb.text[perm], rtol=0, atol=0)
    assert float(out.scale) == 9.5 and float(out.bias) == -8.25


def test_round_trip_of_a_model_s_embeddings(tmp_path):
    model, (images, tokens) = _model(), _pairs()
    emb = embed_pairs(model, images, tokens)
    fp = _fingerprint()
    save_reference_embeddings(tmp_path / "ref", torch.arange(N), emb, fingerprint=fp)
    loaded = load_reference_embeddings(tmp_path / "ref", fingerprint=fp)
    torch.testing.assert_close(loaded.lookup(torch.arange(N)).image, emb.image)
    assert float(loaded.scale) == float(emb.scale)  # float32 survives JSON exactly


def test_fingerprint_mismatch_is_refused(tmp_path):
    save_reference_embeddings(tmp_path / "ref", _ids(), _emb(), fingerprint=_fingerprint())
    other = dataset_fingerprint(torch.ones(N, dtype=torch.long))
    with pytest.raises(ValueError, match="built for other data"):
        load_reference_embeddings(tmp_path / "ref", fingerprint=other)


def test_corrupted_file_is_refused(tmp_path):
    path = save_reference_embeddings(tmp_path / "ref", _ids(), _emb(), fingerprint=_fingerprint())
    data = bytearray((path / "scores.npy").read_bytes())
    data[-1] ^= 0xFF
    (path / "scores.npy").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_reference_embeddings(path, fingerprint=_fingerprint())


def test_wrong_kind_is_refused(tmp_path):
    fp = _fingerprint()
    save_scores(tmp_path / "losses", _ids(), torch.rand(N), kind="reference-loss", fingerprint=fp)
    with pytest.raises(ValueError, match="reference-loss"):
        load_reference_embeddings(tmp_path / "losses", fingerprint=fp)


@pytest.mark.parametrize(
    ("width", "meta", "match"),
    [
        (2 * D + 1, {"width": D, "scale": 10.0, "bias": -10.0}, "width"),
        (2 * D, {"width": D + 1, "scale": 10.0, "bias": -10.0}, "width"),
        (2 * D, {"width": D, "bias": -10.0}, "scale"),
        (2 * D, {"width": D, "scale": 10.0}, "bias"),
        (2 * D, {"width": D, "scale": -1.0, "bias": -10.0}, "scale"),
        (2 * D, {"width": D, "scale": "10", "bias": -10.0}, "scale"),
    ],
)
def test_bad_layout_or_meta_is_refused(tmp_path, width, meta, match):
    fp = _fingerprint()
    rows = torch.rand(N, width)
    save_scores(
        tmp_path / "ref", _ids(), rows, kind=REFERENCE_EMBEDDINGS_KIND, fingerprint=fp, meta=meta
    )
    with pytest.raises(ValueError, match=match):
        load_reference_embeddings(tmp_path / "ref", fingerprint=fp)


def test_meta_reserved_keys_and_bad_values_are_refused(tmp_path):
    fp = _fingerprint()
    with pytest.raises(ValueError, match="scale"):
        save_reference_embeddings(tmp_path / "a", _ids(), _emb(), fingerprint=fp, meta={"scale": 1})
    with pytest.raises(ValueError, match="PairEmbeddings"):
        save_reference_embeddings(tmp_path / "b", _ids(), torch.zeros(N, 4), fingerprint=fp)
    bad = PairEmbeddings(_emb().image, _emb().text, torch.tensor(0.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="scale"):
        save_reference_embeddings(tmp_path / "c", _ids(), bad, fingerprint=fp)
    assert not any(tmp_path.iterdir())  # nothing written


def test_store_layout_is_image_then_text(tmp_path):
    ids, emb, fp = _ids(), _emb(), _fingerprint()
    save_reference_embeddings(tmp_path / "ref", ids, emb, fingerprint=fp)
    table = load_scores(tmp_path / "ref", kind=REFERENCE_EMBEDDINGS_KIND, fingerprint=fp)
    np.testing.assert_array_equal(table.scores[:, :D].numpy(), emb.image.numpy())
    np.testing.assert_array_equal(table.scores[:, D:].numpy(), emb.text.numpy())
    manifest = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert manifest["shape"] == [N, 2 * D]


def test_works_with_a_module_without_parameters():
    class Fixed(nn.Module):
        def forward(self, inputs):
            images, tokens = inputs
            x = torch.nn.functional.normalize(images.flatten(1)[:, :D], dim=1)
            return PairEmbeddings(x, x, torch.tensor(1.0), torch.tensor(0.0))

    images, tokens = _pairs()
    out = embed_pairs(Fixed(), images, tokens, batch_size=4)
    assert out.image.shape == (N, D)
