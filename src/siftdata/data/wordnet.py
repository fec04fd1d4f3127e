"""WordNet 3.0 noun synsets, read offline from Debian's ``wordnet-base`` (never downloads).

Only two files are read, in the WordNet database format (``man 5 wndb``):

* ``index.noun``: one line per lemma, ``lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt
  tagsense_cnt synset_offset [synset_offset...]``, the offsets in sense order (most frequent first);
* ``data.noun``: one line per synset, ``offset lex_filenum ss_type w_cnt word lex_id [word
  lex_id...] p_cnt [ptr...] | gloss``, where ``w_cnt`` is two hex digits and ``offset`` is the
  line's byte offset in the file, so a synset is read by seeking to it.

The directory is an explicit ``root``, else ``$SIFTDATA_WORDNET_DIR``, else :data:`WORDNET_DIR`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ._dirs import choose_data_dir

__all__ = ["WORDNET_DIR", "WORDNET_ENV_VAR", "Synset", "find_wordnet_dir", "lookup_noun"]

WORDNET_DIR = Path("/usr/share/wordnet")
"""Where ``sudo apt-get install wordnet-base`` puts the database."""

WORDNET_ENV_VAR = "SIFTDATA_WORDNET_DIR"
"""Environment variable naming a directory with ``index.noun`` and ``data.noun``."""

_FILES = ("index.noun", "data.noun")
_INSTALL_HINT = (
    "Install it with: sudo apt-get update && sudo apt-get install -y wordnet-base "
    f"(or set {WORDNET_ENV_VAR} to a directory holding {' and '.join(_FILES)}, or pass root=...)"
)
_PARENTHESES = re.compile(r"\s*\([^()]*\)")


@dataclass(frozen=True)
class Synset:
    """One sense of a noun."""

    words: tuple[str, ...]
    """The synonyms of the sense, lower case, with spaces for WordNet's underscores."""
    gloss: str
    """The definition: the gloss before its first ``;`` or quoted example, without parentheses."""


def find_wordnet_dir(root: str | os.PathLike | None = None) -> Path:
    """Find the directory holding WordNet's noun files.

    Parameters
    ----------
    root : path-like or None, default None
        Directory to use. When given, it must hold the files; the other places are not tried.

    Returns
    -------
    pathlib.Path
        ``root`` if given, else ``$SIFTDATA_WORDNET_DIR`` if set, else :data:`WORDNET_DIR`.

    Raises
    ------
    FileNotFoundError
        If the chosen directory lacks ``index.noun`` or ``data.noun``; the message says how to
        install them (``sudo apt-get install -y wordnet-base``).
    """
    candidate, origin = choose_data_dir(root, WORDNET_ENV_VAR, WORDNET_DIR)
    missing = [name for name in _FILES if not (candidate / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet not found: {origin} {str(candidate)!r} lacks {', '.join(missing)}. "
            f"{_INSTALL_HINT}"
        )
    return candidate


@functools.lru_cache(maxsize=4)
def _index_bytes(path: str, _stamp: tuple[int, int]) -> bytes:
    """The whole ``index.noun`` (about 5 MB), with a leading newline so every line follows one.

    Cached by path plus ``(mtime_ns, size)``, so a replaced file is read again.
    """
    return b"\n" + Path(path).read_bytes()


def _stamp(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _sense_offsets(index_path: str, lemma: str) -> tuple[int, ...]:
    """The synset offsets of ``lemma`` in sense order; empty when it is not a noun."""
    text = _index_bytes(index_path, _stamp(index_path))
    start = text.find(b"\n" + lemma.encode("utf-8") + b" ")
    if start < 0:
        return ()
    end = text.find(b"\n", start + 1)
    fields = text[start + 1 : end if end >= 0 else len(text)].decode("utf-8").split()
    synset_cnt, p_cnt = int(fields[2]), int(fields[3])
    first = 4 + p_cnt + 2  # after the pointer symbols, sense_cnt and tagsense_cnt
    return tuple(int(offset) for offset in fields[first : first + synset_cnt])


def _definition(gloss: str) -> str:
    """The gloss up to its first ``;`` or quoted example, with parenthesised asides removed."""
    text = gloss.split(";")[0].split('"')[0]
    return " ".join(_PARENTHESES.sub("", text).split()).strip(" ,:")


@functools.lru_cache(maxsize=256)
def _read_synset(data_path: str, offset: int, _stamp: tuple[int, int]) -> Synset:
    """Parse the ``data.noun`` line at byte ``offset`` (cached, keyed like :func:`_index_bytes`)."""
    with open(data_path, "rb") as f:
        f.seek(offset)
        line = f.readline().decode("utf-8")
    head, sep, gloss = line.partition(" | ")
    fields = head.split()
    if not sep or len(fields) < 4 or int(fields[0]) != offset:
        raise ValueError(f"{data_path}: no synset line at byte offset {offset} (corrupt file?)")
    w_cnt = int(fields[3], 16)
    words = (fields[4 + 2 * i].replace("_", " ").lower() for i in range(w_cnt))
    return Synset(words=tuple(dict.fromkeys(words)), gloss=_definition(gloss))


def lookup_noun(word: str, *, sense: int = 0, root: str | os.PathLike | None = None) -> Synset:
    """Synonyms and definition of one sense of a WordNet noun.

    Parameters
    ----------
    word : str
        The noun, any case; spaces or underscores join the words of a collocation (``"gym shoe"``).
    sense : int, default 0
        Which sense, 0 being WordNet's first (most frequent) sense.
    root : path-like or None, default None
        Directory with the database; see :func:`find_wordnet_dir`.

    Returns
    -------
    Synset
        The sense's synonyms and definition. Files are read once and cached, so repeated
        lookups are fast.

    Raises
    ------
    KeyError
        If ``word`` is not a noun in WordNet.
    ValueError
        If ``sense`` is not in ``[0, number of senses)``.
    FileNotFoundError
        If WordNet is not installed.
    """
    directory = find_wordnet_dir(root).resolve()
    lemma = "_".join(word.lower().split())
    offsets = _sense_offsets(str(directory / "index.noun"), lemma) if lemma else ()
    if not offsets:
        raise KeyError(f"word {word!r} is not a noun in WordNet ({directory})")
    if isinstance(sense, bool) or not isinstance(sense, int) or not 0 <= sense < len(offsets):
        raise ValueError(
            f"sense must be an int in [0, {len(offsets)}) ({word!r} has {len(offsets)} noun "
            f"senses), got {sense!r}"
        )
    data_path = str(directory / "data.noun")
    return _read_synset(data_path, offsets[sense], _stamp(data_path))
