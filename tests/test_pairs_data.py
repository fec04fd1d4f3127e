"""The ``pairs-fmnist`` data: WordNet lookups, image attributes, captions, tokenizer, pairs."""

from __future__ import annotations

import functools
import time

import pytest
import torch

from siftdata.data import (
    ATTRIBUTE_WORDS,
    FASHION_MNIST_CLASSES,
    FMNIST_ENV_VAR,
    INK_LEVEL,
    WORDNET_ENV_VAR,
    ClassText,
    Vocabulary,
    attribute_thresholds,
    attribute_words,
    build_pairs,
    caption_vocabulary,
    class_prompts,
    class_texts,
    coarse_captions,
    find_fashion_mnist_dir,
    find_wordnet_dir,
    fine_captions,
    image_attributes,
    lookup_noun,
    mismatch_donors,
)


def _available(find) -> bool:
    try:
        find()
    except FileNotFoundError:
        return False
    return True


needs_wordnet = pytest.mark.skipif(
    not _available(find_wordnet_dir),
    reason="WordNet is not installed (sudo apt-get install -y wordnet-base)",
)
needs_data = pytest.mark.skipif(
    not (_available(find_wordnet_dir) and _available(find_fashion_mnist_dir)),
    reason="needs Fashion-MNIST and WordNet "
    "(sudo apt-get install -y dataset-fashion-mnist wordnet-base)",
)

SMALL = {"pool_size": 2_000, "curated_size": 200}


@functools.lru_cache(maxsize=16)
def _build(**kwargs):
    return build_pairs(**{**SMALL, **kwargs})


@pytest.fixture(autouse=True)
def _default_dirs(monkeypatch):
    monkeypatch.delenv(WORDNET_ENV_VAR, raising=False)
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)


# --- WordNet ----------------------------------------------------------------------------------


@needs_wordnet
def test_lookup_noun_reads_real_synonyms_and_glosses():
    trouser = lookup_noun("trouser")
    assert trouser.words == ("trouser", "pant")  # WordNet 3.0 has "pant", not "pants"
    assert trouser.gloss.startswith("a garment extending from the waist to the knee or ankle")
    assert "(" not in trouser.gloss and ";" not in trouser.gloss and '"' not in trouser.gloss
    handbag = lookup_noun("bag", sense=3)
    assert {"handbag", "purse"} <= set(handbag.words)
    assert lookup_noun("Gym Shoe") == lookup_noun("sneaker") == lookup_noun("gym_shoe")
    assert "tee shirt" in lookup_noun("tee_shirt").words


@needs_wordnet
def test_lookup_noun_rejects_unknown_words_and_senses():
    with pytest.raises(KeyError, match="not a noun"):
        lookup_noun("qwertyuiop")
    with pytest.raises(ValueError, match=r"sense must be .* \[0, 3\)"):
        lookup_noun("dress", sense=3)


def _write_wordnet(directory, synsets):
    """A tiny WordNet: ``synsets`` is ``[(words, gloss)]``; every word indexes its synsets."""
    directory.mkdir()
    data = b"  1 a licence line\n"
    senses: dict[str, list[int]] = {}
    for words, gloss in synsets:
        offset = len(data)
        listed = " ".join(f"{w} 0" for w in words)
        data += f"{offset:08d} 06 n {len(words):02x} {listed} 000 | {gloss}  \n".encode()
        for w in words:
            senses.setdefault(w.lower(), []).append(offset)
    lines = [
        f"{w} n {len(o)} 1 @ {len(o)} 0 " + " ".join(f"{x:08d}" for x in o)
        for w, o in senses.items()
    ]
    (directory / "data.noun").write_bytes(data)
    (directory / "index.noun").write_text("  1 licence\n" + "\n".join(sorted(lines)) + "\n")
    return directory


def test_lookup_noun_seeks_by_offset_in_a_small_database(tmp_path, monkeypatch):
    root = _write_wordnet(
        tmp_path / "wn",
        [
            (["Widget", "gizmo"], "a small gadget (informal); she had one"),
            (["widget"], 'a control on a screen "click the widget"'),
        ],
    )
    assert lookup_noun("widget", root=root).words == ("widget", "gizmo")
    assert lookup_noun("widget", root=root).gloss == "a small gadget"
    assert lookup_noun("widget", sense=1, root=root).gloss == "a control on a screen"
    monkeypatch.setenv(WORDNET_ENV_VAR, str(root))
    assert find_wordnet_dir() == root
    assert lookup_noun("gizmo").words == ("widget", "gizmo")


def test_missing_wordnet_says_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install -y wordnet-base"):
        find_wordnet_dir(tmp_path)
    monkeypatch.setenv(WORDNET_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=WORDNET_ENV_VAR):
        lookup_noun("dress")


@needs_wordnet
def test_class_texts_use_the_garment_senses():
    texts = class_texts()
    assert len(texts) == len(FASHION_MNIST_CLASSES)
    for text, name in zip(texts, FASHION_MNIST_CLASSES, strict=True):
        assert text.names[0] == name.lower().split("/")[0]
        assert len(set(text.names)) == len(text.names) and text.gloss
    assert texts[0].names == ("t-shirt", "top", "jersey", "tee shirt")
    assert "handbag" in texts[8].names and "money" in texts[8].gloss
    assert "gym shoe" in texts[7].names and "shoe" in texts[7].gloss
    assert "leg" in texts[9].gloss


# --- attributes -------------------------------------------------------------------------------


def _slow_attributes(image):
    """Reference attributes of one (H, W) uint8 image, with plain loops."""
    h, w = image.shape
    ink = [[int(image[i, j]) > INK_LEVEL for j in range(w)] for i in range(h)]
    x = [[image[i, j].item() / 255 if ink[i][j] else 0.0 for j in range(w)] for i in range(h)]
    cols = [j for j in range(w) if any(ink[i][j] for i in range(h))]
    n_ink = sum(map(sum, ink))
    mass = sum(map(sum, x))
    diff = sum(abs(x[i][j] - x[i][w - 1 - j]) for i in range(h) for j in range(w))
    return {
        "ink": n_ink / (h * w),
        "width": (cols[-1] - cols[0] + 1) / w if cols else 0.0,
        "brightness": mass / n_ink if n_ink else 0.0,
        "symmetry": 1 - diff / (2 * mass) if mass else 1.0,
    }


def test_image_attributes_on_hand_made_images():
    half = torch.zeros(28, 28, dtype=torch.uint8)
    half[:, :14] = 255
    block = torch.zeros(28, 28, dtype=torch.uint8)
    block[4:20, 7:21] = 128
    faint = torch.full((28, 28), INK_LEVEL, dtype=torch.uint8)  # not above the ink level
    a = image_attributes(torch.stack([half, block, faint]))
    assert list(a) == list(ATTRIBUTE_WORDS)
    torch.testing.assert_close(a["ink"], torch.tensor([0.5, 16 * 14 / 784, 0.0]))
    torch.testing.assert_close(a["width"], torch.tensor([0.5, 0.5, 0.0]))
    torch.testing.assert_close(a["brightness"], torch.tensor([1.0, 128 / 255, 0.0]))
    torch.testing.assert_close(a["symmetry"], torch.tensor([0.0, 1.0, 1.0]))


def test_image_attributes_match_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 9, 7), generator=g, dtype=torch.uint8)
    images[1] = 0
    images[2, :, :3] = 0
    fast = image_attributes(images.unsqueeze(1))  # (N, 1, H, W) is accepted too
    for n in range(images.shape[0]):
        for key, value in _slow_attributes(images[n]).items():
            assert fast[key][n].item() == pytest.approx(value, abs=1e-5), (n, key)
    with pytest.raises(ValueError, match="images must be a uint8 tensor"):
        image_attributes(images.float())


def test_attribute_buckets_use_the_given_thresholds():
    values = torch.arange(9, dtype=torch.float32)
    attributes = dict.fromkeys(ATTRIBUTE_WORDS, values)
    thresholds = attribute_thresholds(attributes)
    assert thresholds["ink"] == pytest.approx((8 / 3, 16 / 3))
    buckets = attribute_words(attributes, thresholds)
    assert buckets["width"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    other = attribute_words(
        dict.fromkeys(ATTRIBUTE_WORDS, torch.tensor([-1.0, 4.0, 99.0])), thresholds
    )
    assert other["symmetry"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="keys"):
        attribute_words({"ink": values}, thresholds)


# --- captions and tokenizer -------------------------------------------------------------------

TEXTS = (
    ClassText(names=("apple", "pome"), gloss="a red fruit"),
    ClassText(names=("banana",), gloss="a yellow fruit"),
)


def test_coarse_captions_only_vary_by_template_name_and_gloss():
    labels = torch.tensor([0, 1] * 500)
    captions = coarse_captions(labels, texts=TEXTS, generator=torch.Generator().manual_seed(0))
    again = coarse_captions(labels, texts=TEXTS, generator=torch.Generator().manual_seed(0))
    other = coarse_captions(labels, texts=TEXTS, generator=torch.Generator().manual_seed(1))
    assert captions == again and captions != other
    banana = {c for c, y in zip(captions, labels.tolist(), strict=True) if y == 1}
    apple = {c for c, y in zip(captions, labels.tolist(), strict=True) if y == 0}
    assert len(banana) == 5 * 2 and len(apple) == 5 * 2 * 2  # templates x names x gloss or not
    assert "an image of an apple, a red fruit" in apple and "a banana" in banana
    assert not any("banana" in c or "yellow" in c for c in apple)


def test_fine_captions_state_the_attribute_buckets():
    labels = torch.tensor([1, 1, 1])
    buckets = {key: torch.tensor([0, 1, 2]) for key in ATTRIBUTE_WORDS}
    captions = fine_captions(
        labels, buckets, texts=TEXTS, generator=torch.Generator().manual_seed(0)
    )
    assert len(set(captions)) == 3
    for caption, b in zip(captions, range(3), strict=True):
        assert "banana" in caption
        for words in ATTRIBUTE_WORDS.values():
            assert words[b] in caption
    with pytest.raises(ValueError, match="buckets"):
        fine_captions(
            labels,
            {**buckets, "ink": torch.tensor([0, 1, 3])},
            texts=TEXTS,
            generator=torch.Generator(),
        )


def test_class_prompts_have_the_same_count_per_class():
    prompts = class_prompts(texts=TEXTS)
    assert [len(p) for p in prompts] == [4, 4]
    assert prompts[0][:2] == ["a photo of an apple", "a pome"]
    assert all("banana" in p for p in prompts[1])


def test_vocabulary_round_trip_padding_truncation_and_unknown_words():
    vocab = Vocabulary(["photo", "a", "of", "t", "shirt", "a"])
    assert vocab.words == ("<pad>", "<unk>", "a", "of", "photo", "shirt", "t")
    tokens = vocab.encode(["A photo of a T-shirt", "a zebra", ""], max_tokens=6)
    assert tokens.dtype == torch.int64 and tokens.shape == (3, 6)
    assert tokens[0].tolist() == [2, 4, 3, 2, 6, 5]
    assert vocab.decode(tokens[0]) == "a photo of a t shirt"
    assert tokens[1].tolist() == [2, Vocabulary.UNKNOWN, 0, 0, 0, 0]
    assert tokens[2].tolist() == [0] * 6
    assert vocab.encode(["a photo of a shirt"], max_tokens=2).tolist() == [[2, 4]]
    assert vocab.encode([], max_tokens=3).shape == (0, 3)
    with pytest.raises(ValueError, match="max_tokens"):
        vocab.encode(["a"], max_tokens=0)
    with pytest.raises(ValueError, match="texts"):
        vocab.encode("a photo", max_tokens=3)
    with pytest.raises(ValueError, match="words"):
        Vocabulary(["two words"])


@needs_wordnet
def test_vocabulary_covers_every_caption_and_encodes_fast():
    texts = class_texts()
    vocab = caption_vocabulary(texts)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (60_000,), generator=g)
    buckets = {key: torch.randint(0, 3, (60_000,), generator=g) for key in ATTRIBUTE_WORDS}
    captions = fine_captions(labels, buckets, texts=texts, generator=g)
    captions += coarse_captions(labels[:1000], texts=texts, generator=g)
    captions += [p for row in class_prompts(texts=texts) for p in row]
    start = time.perf_counter()
    tokens = vocab.encode(captions, max_tokens=24)
    assert time.perf_counter() - start < 2.0
    assert not (tokens == Vocabulary.UNKNOWN).any()
    assert int((tokens != 0).sum(dim=1).max()) <= 21  # the longest caption has 21 tokens


# --- pairs ------------------------------------------------------------------------------------


def test_mismatch_donors_are_of_another_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    source = mismatch_donors(labels, count=7, generator=torch.Generator().manual_seed(0))
    moved = source != torch.arange(10)
    assert int(moved.sum()) == 7
    assert (labels[source[moved]] != labels[moved]).all()
    with pytest.raises(ValueError, match="same class"):
        mismatch_donors(torch.zeros(4, dtype=torch.long), count=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="count"):
        mismatch_donors(labels, count=11, generator=torch.Generator())


@needs_data
def test_build_pairs_shapes_and_split():
    d = _build(captions="fine", max_tokens=20)
    n, m = SMALL["pool_size"], SMALL["curated_size"]
    assert d.pool_images.shape == (n, 1, 28, 28) and d.pool_images.dtype == torch.float32
    assert d.pool_tokens.shape == (n, 20) and d.pool_tokens.dtype == torch.int64
    assert d.curated_tokens.shape == (m, 20) and d.curated_images.shape == (m, 1, 28, 28)
    assert d.test_tokens.shape == (10_000, 20) and d.test_labels.shape == (10_000,)
    assert d.prompt_tokens.shape == (10, 4, 20)
    assert d.captions == "fine" and d.mismatch == 0.5
    assert not set(d.pool_indices.tolist()) & set(d.curated_indices.tolist())
    for tokens in (d.pool_tokens, d.curated_tokens, d.test_tokens, d.prompt_tokens):
        assert not (tokens == Vocabulary.UNKNOWN).any() and (tokens[..., 0] != 0).all()


@needs_data
@pytest.mark.parametrize("mismatch", [0.0, 0.3, 0.6251])
def test_build_pairs_mismatches_exactly_round_m_n_pairs(mismatch):
    d = _build(mismatch=mismatch)
    assert int(d.pool_mismatched.sum()) == round(mismatch * SMALL["pool_size"])
    assert torch.equal(d.pool_mismatched, d.pool_caption_source != torch.arange(SMALL["pool_size"]))


def _class_captions(texts, c):
    """Every coarse caption class ``c`` can carry, as token tuples."""
    labels = torch.full((2_000,), c)
    return set(coarse_captions(labels, texts=texts, generator=torch.Generator().manual_seed(c)))


@needs_data
def test_mismatched_captions_belong_to_another_class():
    clean, d = _build(mismatch=0.0), _build(mismatch=0.4)
    source, moved = d.pool_caption_source, d.pool_mismatched
    assert (d.pool_labels[source[moved]] != d.pool_labels[moved]).all()
    assert torch.equal(d.pool_tokens, clean.pool_tokens[source])
    assert torch.equal(d.pool_tokens[~moved], clean.pool_tokens[~moved])
    texts = class_texts()
    encode = lambda s: {tuple(r) for r in d.vocabulary.encode(sorted(s), max_tokens=24).tolist()}  # noqa: E731
    per_class = [encode(_class_captions(texts, c)) for c in range(10)]
    for i in moved.nonzero().flatten()[:200].tolist():
        caption = tuple(d.pool_tokens[i].tolist())
        assert caption in per_class[int(d.pool_labels[source[i]])]
        assert caption not in per_class[int(d.pool_labels[i])]
    for i in (~moved).nonzero().flatten()[:200].tolist():
        assert tuple(d.pool_tokens[i].tolist()) in per_class[int(d.pool_labels[i])]


@needs_data
def test_fine_captions_differ_within_a_class_and_coarse_ones_do_not():
    coarse, fine = _build(mismatch=0.0), _build(captions="fine", mismatch=0.0)
    for c in range(10):
        n_coarse = len({tuple(r) for r in coarse.test_tokens[coarse.test_labels == c].tolist()})
        n_fine = len({tuple(r) for r in fine.test_tokens[fine.test_labels == c].tolist()})
        assert n_coarse <= 5 * 2 * 4  # templates x gloss or not x names
        assert n_fine > 2 * n_coarse


@needs_data
def test_build_pairs_is_deterministic_for_a_seed():
    a, b, c = _build(seed=3), build_pairs(**SMALL, seed=3), _build(seed=4)
    for field in ("pool_tokens", "pool_labels", "pool_mismatched", "curated_tokens", "test_tokens"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert torch.equal(a.pool_images, b.pool_images)
    assert not torch.equal(a.pool_indices, c.pool_indices)
    assert not torch.equal(a.test_tokens, c.test_tokens)
    assert torch.equal(a.prompt_tokens, c.prompt_tokens)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"captions": "medium"}, "captions"),
        ({"mismatch": 1.0}, "mismatch"),
        ({"mismatch": -0.1}, "mismatch"),
        ({"mismatch": "half"}, "mismatch"),
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": 60_000}, "pool_size"),
        ({"pool_size": 59_000, "curated_size": 1_001}, "curated_size"),
        ({"curated_size": 0}, "curated_size"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_build_pairs_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        build_pairs(**kwargs)


@needs_data
def test_build_pairs_without_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        build_pairs(**SMALL, wordnet_root=tmp_path)
