"""A real text classification task read offline from WordNet: a noun's gloss → its supersense.

Every noun synset of ``data.noun`` belongs to one lexicographer file, its supersense
(``noun.animal``, ``noun.artifact``, ...): a real label assigned by WordNet's lexicographers, not
derived from the text. :func:`load_supersenses` gives one example per synset: its definition
(the gloss before its examples, see :class:`~siftdata.data.wordnet.Synset`) and the index of its
supersense among the 25 of :data:`NOUN_SUPERSENSES` (``noun.Tops``, 51 top-level synsets, is
left out). About 82 000 examples, in file order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .wordnet import _definition, find_wordnet_dir

__all__ = ["NOUN_SUPERSENSES", "SupersenseData", "load_supersenses"]

NOUN_SUPERSENSES = (
    "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
    "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity",
    "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
)  # fmt: skip
"""The noun lexicographer files 04–28 (``man 5 lexnames``), label ``i`` being file ``i + 4``."""

_FIRST_FILE = 4  # 03 is noun.Tops


@dataclass(frozen=True)
class SupersenseData:
    """Glosses and their supersense labels, in ``data.noun`` order."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    offsets: tuple[int, ...]
    """Each synset's byte offset in ``data.noun`` (WordNet's own id for it)."""

    def __len__(self) -> int:
        return len(self.texts)


def load_supersenses(root: str | os.PathLike | None = None) -> SupersenseData:
    """Every noun synset's definition and supersense (see the module docstring).

    ``root`` is WordNet's directory (see :func:`~siftdata.data.wordnet.find_wordnet_dir`:
    ``FileNotFoundError`` with how to install it when missing).
    """
    path = find_wordnet_dir(root) / "data.noun"
    texts, labels, offsets = [], [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("  "):  # the licence header
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split()
            if not sep or len(fields) < 4:
                raise ValueError(f"{path}: not a synset line: {line[:60]!r}")
            label = int(fields[1]) - _FIRST_FILE
            text = _definition(gloss)
            if not 0 <= label < len(NOUN_SUPERSENSES) or not text:
                continue
            texts.append(text)
            labels.append(label)
            offsets.append(int(fields[0]))
    return SupersenseData(tuple(texts), tuple(labels), tuple(offsets))
