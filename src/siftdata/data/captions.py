"""Captions for Fashion-MNIST images from WordNet names and glosses, and a word-level tokenizer.

* **coarse** captions name the class (its Fashion-MNIST name or a WordNet synonym) in one of a
  few templates, half of them followed by the class's WordNet gloss: every image of a class
  gets one of a few dozen captions.
* **fine** captions also state four attributes measured on the image
  (:func:`image_attributes`), each put in one of three buckets by tertiles fixed on a reference
  set (:func:`attribute_thresholds`), so two images of a class usually get different captions
  and same-class pairs in a batch are hard negatives.

Every choice is drawn from an explicit ``torch.Generator``: the same seed gives the same captions.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_int_range
from .fmnist import FASHION_MNIST_CLASSES
from .wordnet import lookup_noun

__all__ = [
    "CLASS_QUERIES",
    "ATTRIBUTE_WORDS",
    "INK_LEVEL",
    "ClassText",
    "class_texts",
    "image_attributes",
    "attribute_thresholds",
    "attribute_words",
    "coarse_captions",
    "fine_captions",
    "class_prompts",
    "Vocabulary",
    "caption_vocabulary",
]

CLASS_QUERIES: tuple[tuple[str, int], ...] = (
    ("tee_shirt", 0),  # a close-fitting pullover shirt
    ("trouser", 0),  # a garment extending from the waist to the knee or ankle, covering each leg...
    ("pullover", 0),  # a sweater that is put on by pulling it over the head
    ("dress", 0),  # a one-piece garment for a woman
    ("coat", 0),  # an outer garment that has sleeves and covers the body from shoulder down
    ("sandal", 0),  # a shoe consisting of a sole fastened by straps to the foot
    ("shirt", 0),  # a garment worn on the upper half of the body
    ("sneaker", 0),  # a canvas shoe with a pliable rubber sole (sense 1 is an informer)
    ("bag", 3),  # a container used for carrying money and small personal items or accessories
    ("boot", 0),  # footwear that covers the whole foot and lower leg
)
"""WordNet ``(noun, sense)`` per class, in label order; each sense was chosen by reading glosses."""

ATTRIBUTE_WORDS: dict[str, tuple[str, str, str]] = {
    "ink": ("sparse ink", "moderate ink", "heavy ink"),
    "width": ("narrow", "medium-width", "wide"),
    "brightness": ("dim", "moderately bright", "bright"),
    "symmetry": ("asymmetric", "fairly symmetric", "symmetric"),
}
"""The phrases of the fine captions' attributes, per bucket (low, middle, high tertile)."""

INK_LEVEL = 64
"""A pixel is *ink* when its ``uint8`` value exceeds this (a quarter of full intensity)."""

_COARSE = (
    "a photo of {a_name}",
    "{a_name}",
    "a grayscale picture of {a_name}",
    "a product photo of {a_name}",
    "an image of {a_name}",
)
_GLOSS = "{caption}, {gloss}"
_FINE = (
    "a photo of {a_name} with {ink}, {width}, {brightness} and {symmetry}",
    "{a_name}: {width}, {symmetry}, {brightness}, {ink}",
    "a grayscale picture of {a_name} that is {width}, {brightness} and {symmetry}, with {ink}",
    "{width} and {symmetry} {name} with {ink}, {brightness}",
)
_PROMPTS = _COARSE[:4]
_CHUNK = 8192  # images per step of image_attributes, to bound its temporary memory


@dataclass(frozen=True)
class ClassText:
    """What the captions say about one class."""

    names: tuple[str, ...]
    """The Fashion-MNIST name (split at ``/``), then the WordNet synonyms; lower case, deduped."""
    gloss: str
    """The WordNet definition of the class's sense."""


def class_texts(*, root=None) -> tuple[ClassText, ...]:
    """The ten classes' names and glosses, in label order, looked up in WordNet.

    Parameters
    ----------
    root : path-like or None, default None
        WordNet directory; see :func:`siftdata.data.wordnet.find_wordnet_dir`.
    """
    texts = []
    for class_name, (noun, sense) in zip(FASHION_MNIST_CLASSES, CLASS_QUERIES, strict=True):
        synset = lookup_noun(noun, sense=sense, root=root)
        own = [part.strip() for part in class_name.lower().split("/")]
        texts.append(
            ClassText(names=tuple(dict.fromkeys([*own, *synset.words])), gloss=synset.gloss)
        )
    return tuple(texts)


# --- attributes -------------------------------------------------------------------------------


def _extent(mask: Tensor) -> Tensor:
    """Length of the span from the first to the last True along the last dim (0 if none)."""
    size = mask.shape[-1]
    first = mask.to(torch.uint8).argmax(dim=-1)
    last = size - 1 - mask.flip(-1).to(torch.uint8).argmax(dim=-1)
    return torch.where(mask.any(dim=-1), last - first + 1, 0)


def _attributes(images: Tensor) -> dict[str, Tensor]:
    height, width = images.shape[-2:]
    ink = images > INK_LEVEL
    x = images.to(torch.float32).div_(255.0).mul_(ink)  # ink intensities, background zeroed
    n_ink = ink.sum(dim=(1, 2))
    mass = x.sum(dim=(1, 2))
    asymmetry = (x - x.flip(-1)).abs().sum(dim=(1, 2))
    return {
        "ink": n_ink.float() / (height * width),
        "width": _extent(ink.any(dim=1)).float() / width,
        "brightness": mass / n_ink.clamp_min(1),
        "symmetry": 1.0 - asymmetry / (2.0 * mass).clamp_min(1e-8),
    }


def image_attributes(images: Tensor) -> dict[str, Tensor]:
    """Measure four attributes of each image, each a float32 ``(N,)`` in ``[0, 1]``.

    With ``ink = images > INK_LEVEL`` and ``x`` the intensities in ``[0, 1]`` of the ink pixels
    (0 elsewhere):

    * ``ink``: coverage, the share of ink pixels, ``Σ ink / (H W)``;
    * ``width``: the width of the ink's bounding box over ``W``;
    * ``brightness``: the mean intensity of the ink pixels, ``Σ x / Σ ink`` (0 without ink);
    * ``symmetry``: ``1 − Σ |x − mirror(x)| / (2 Σ x)``, 1 for a left–right symmetric image
      (and one without ink), 0 when no ink pixel has a mirror image.

    Parameters
    ----------
    images : Tensor
        ``uint8`` of shape ``(N, H, W)`` or ``(N, 1, H, W)``.

    Returns
    -------
    dict[str, Tensor]
        The keys of :data:`ATTRIBUTE_WORDS`, in that order.
    """
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a uint8 tensor, got {kind}")
    if images.dim() == 4 and images.shape[1] == 1:
        images = images.squeeze(1)
    if images.dim() != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    parts = [_attributes(chunk) for chunk in images.split(_CHUNK)] or [_attributes(images)]
    return {key: torch.cat([p[key] for p in parts]) for key in ATTRIBUTE_WORDS}


def attribute_thresholds(attributes: dict[str, Tensor]) -> dict[str, tuple[float, float]]:
    """The tertiles of each attribute: the bucket boundaries for :func:`attribute_words`.

    Compute them once, on a reference set (the training pool), and pass the same thresholds
    for every split so that a word means the same range everywhere.
    """
    q = torch.tensor([1.0 / 3.0, 2.0 / 3.0])
    out = {}
    for key, values in attributes.items():
        if values.dim() != 1 or values.numel() == 0:
            raise ValueError(f"attributes[{key!r}] must be a non-empty 1-D tensor")
        low, high = torch.quantile(values.double(), q.double()).tolist()
        out[key] = (low, high)
    return out


def attribute_words(
    attributes: dict[str, Tensor], thresholds: dict[str, tuple[float, float]]
) -> dict[str, Tensor]:
    """Bucket every attribute value: int64 ``(N,)`` in ``{0, 1, 2}`` per attribute.

    The bucket is ``[v >= low] + [v >= high]`` with ``(low, high) = thresholds[name]``; bucket
    ``b`` of attribute ``name`` reads ``ATTRIBUTE_WORDS[name][b]`` in a caption.
    """
    missing = [key for key in ATTRIBUTE_WORDS if key not in attributes or key not in thresholds]
    if missing:
        raise ValueError(f"attributes and thresholds need the keys {missing}")
    out = {}
    for key in ATTRIBUTE_WORDS:
        low, high = thresholds[key]
        if not low <= high:
            raise ValueError(f"thresholds[{key!r}] must be (low, high) with low <= high")
        values = attributes[key]
        out[key] = (values >= low).long() + (values >= high).long()
    return out


# --- captions ---------------------------------------------------------------------------------


def _with_article(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def _check_labels(labels: Tensor, texts: Sequence[ClassText]) -> list[int]:
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError("labels must be a 1-D integer tensor")
    if labels.numel() and not (int(labels.min()) >= 0 and int(labels.max()) < len(texts)):
        raise ValueError(f"labels must be in [0, {len(texts)}) (one ClassText per class)")
    return labels.tolist()


def _draw(
    labels: list[int], texts: Sequence[ClassText], n_templates: int, generator: torch.Generator
) -> tuple[list[int], list[str]]:
    """Per caption, a template index and a name of its class (uniform), from ``generator``."""
    n = len(labels)
    template = torch.randint(0, n_templates, (n,), generator=generator).tolist()
    counts = torch.tensor([len(t.names) for t in texts], dtype=torch.float64)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    which = (u * counts[torch.tensor(labels, dtype=torch.long)]).long().tolist()
    return template, [texts[c].names[j] for c, j in zip(labels, which, strict=True)]


def coarse_captions(
    labels: Tensor, *, texts: Sequence[ClassText], generator: torch.Generator
) -> list[str]:
    """One class-level caption per label: a template, a name, and with probability 1/2 the gloss.

    Parameters
    ----------
    labels : Tensor
        int64 ``(N,)`` class of each caption, in ``[0, len(texts))``.
    texts : sequence of ClassText
        Per class, its names and gloss (:func:`class_texts`).
    generator : torch.Generator
        Draws template, name and gloss flag (in that order).
    """
    classes = _check_labels(labels, texts)
    template, names = _draw(classes, texts, len(_COARSE), generator)
    with_gloss = (torch.rand(len(classes), generator=generator) < 0.5).tolist()
    captions = []
    for c, t, name, gloss in zip(classes, template, names, with_gloss, strict=True):
        caption = _COARSE[t].format(a_name=_with_article(name))
        captions.append(_GLOSS.format(caption=caption, gloss=texts[c].gloss) if gloss else caption)
    return captions


def fine_captions(
    labels: Tensor,
    buckets: dict[str, Tensor],
    *,
    texts: Sequence[ClassText],
    generator: torch.Generator,
) -> list[str]:
    """One caption per label with the class name and the image's four attribute phrases.

    Parameters
    ----------
    labels : Tensor
        int64 ``(N,)`` class of each caption, in ``[0, len(texts))``.
    buckets : dict[str, Tensor]
        Per attribute, the ``(N,)`` bucket in ``{0, 1, 2}`` (:func:`attribute_words`).
    texts : sequence of ClassText
        Per class, its names and gloss (:func:`class_texts`).
    generator : torch.Generator
        Draws template and name (in that order).
    """
    classes = _check_labels(labels, texts)
    phrases = {}
    for key, words in ATTRIBUTE_WORDS.items():
        b = buckets.get(key)
        if not isinstance(b, Tensor) or b.shape != labels.shape:
            raise ValueError(f"buckets[{key!r}] must be a tensor of shape {tuple(labels.shape)}")
        if b.numel() and not (int(b.min()) >= 0 and int(b.max()) <= 2):
            raise ValueError(f"buckets[{key!r}] must hold 0, 1 or 2")
        phrases[key] = [words[i] for i in b.tolist()]
    template, names = _draw(classes, texts, len(_FINE), generator)
    return [
        _FINE[t].format(
            name=name, a_name=_with_article(name), **{k: v[i] for k, v in phrases.items()}
        )
        for i, (t, name) in enumerate(zip(template, names, strict=True))
    ]


def class_prompts(*, texts: Sequence[ClassText] | None = None, root=None) -> list[list[str]]:
    """Zero-shot prompts: per class, four templates, the ``j``-th with name ``j`` (cycling).

    Parameters
    ----------
    texts : sequence of ClassText or None, default None
        Per class, its names; None looks them up with :func:`class_texts`.
    root : path-like or None, default None
        WordNet directory, when ``texts`` is None.

    Returns
    -------
    list of list of str
        ``[class][prompt]``, the same number of prompts for every class, e.g.
        ``"a photo of a t-shirt"``, ``"a top"``, ``"a grayscale picture of a jersey"``.
    """
    texts = class_texts(root=root) if texts is None else texts
    return [
        [p.format(a_name=_with_article(t.names[j % len(t.names)])) for j, p in enumerate(_PROMPTS)]
        for t in texts
    ]


# --- tokenizer --------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


class Vocabulary:
    """A word-level tokenizer: lower case, split on non-alphanumerics, one id per known word.

    Id 0 (:attr:`PAD`) pads, id 1 (:attr:`UNKNOWN`) stands for any unknown word, and the known
    words follow in sorted order, so equal word sets give equal ids.

    Parameters
    ----------
    words : iterable of str
        The known words, each a single token (lower-case letters and digits).
    """

    PAD = 0
    UNKNOWN = 1

    def __init__(self, words: Iterable[str]) -> None:
        unique = sorted(set(words))
        bad = [w for w in unique if self.tokenize(w) != [w]]
        if bad:
            raise ValueError(f"words must be single lower-case alphanumeric tokens, got {bad[:5]}")
        self.words: tuple[str, ...] = ("<pad>", "<unk>", *unique)
        self._ids = {w: i for i, w in enumerate(self.words) if i >= 2}

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """The words of ``text``: lower case, split on anything but letters and digits."""
        return _TOKEN.findall(text.lower())

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], *, max_tokens: int) -> Tensor:
        """Token ids of each text, truncated to ``max_tokens`` and padded with 0.

        Returns an int64 tensor ``(len(texts), max_tokens)``. Each distinct text is tokenized
        once, so the many repeated captions of a dataset encode fast.
        """
        check_int_range(max_tokens, "max_tokens", low=1)
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string")
        position: dict[str, int] = {}
        inverse = [position.setdefault(text, len(position)) for text in texts]
        rows = []
        for text in position:
            if not isinstance(text, str):
                raise ValueError(f"texts must hold strings, got {type(text).__name__}")
            ids = [self._ids.get(w, self.UNKNOWN) for w in self.tokenize(text)[:max_tokens]]
            rows.append(ids + [self.PAD] * (max_tokens - len(ids)))
        table = torch.tensor(rows, dtype=torch.long).reshape(len(rows), max_tokens)
        return table[torch.tensor(inverse, dtype=torch.long)]

    def decode(self, tokens: Tensor) -> str:
        """The words of one row of ids, padding dropped (unknown words read ``<unk>``)."""
        return " ".join(self.words[i] for i in tokens.tolist() if i != self.PAD)


def _template_words(template: str) -> list[str]:
    literal = " ".join(text for text, *_ in string.Formatter().parse(template))
    return Vocabulary.tokenize(literal)


def caption_vocabulary(texts: Sequence[ClassText]) -> Vocabulary:
    """Every word a caption or prompt can hold: templates, articles, names, glosses, attributes."""
    words = ["a", "an"]
    for template in (*_COARSE, _GLOSS, *_FINE, *_PROMPTS):
        words += _template_words(template)
    for t in texts:
        words += [w for piece in (*t.names, t.gloss) for w in Vocabulary.tokenize(piece)]
    words += [
        w for phrases in ATTRIBUTE_WORDS.values() for p in phrases for w in Vocabulary.tokenize(p)
    ]
    return Vocabulary(words)
