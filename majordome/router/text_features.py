"""Lexical features that work in any language: hashed character n-grams and word n-grams.

Text is lower-cased and stripped of accents (creators often type "idees" for "idées"), then cut
into words; each word contributes its character 3- to 5-grams (padded with spaces, so prefixes
and suffixes count), and the text its word unigrams and bigrams. Features are hashed with CRC-32
(stable across processes, unlike ``hash()``) into ``width`` columns, weighted ``1 + log(count)``
and L2-normalised.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from majordome.router._linear import Sparse

__all__ = ["DEFAULT_WIDTH", "hash_features", "hash_one", "normalise_text"]

DEFAULT_WIDTH = 2**15
FEATURES_VERSION = 2  # part of the cache key of trained classifiers: bump when features change
_WORD = re.compile(r"[\w$€%]+", re.UNICODE)
_MAX_CHARS = 2000


_COMBINING = re.compile("[\u0300-\u036f]")


def normalise_text(text: str) -> str:
    """Lower-case, accents removed, at most 2,000 characters (head and tail of long texts)."""
    if len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS // 2] + " " + text[-_MAX_CHARS // 2 :]
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.lower()))


@functools.lru_cache(maxsize=65536)
def _word_columns(word: str, width: int) -> tuple[int, ...]:
    """The columns of a word's own features (itself and its character 3- to 5-grams); words
    recur, so each is hashed once."""
    padded = f" {word} "
    grams = ["w:" + word] + [padded[i : i + size] for size in (3, 4, 5) for i in range(len(padded) - size + 1)]
    return tuple(zlib.crc32(g.encode("utf-8")) % width for g in grams)


def _columns(text: str, width: int) -> Counter[int]:
    words = _WORD.findall(normalise_text(text))
    counts: Counter[int] = Counter()
    for word in words:
        counts.update(_word_columns(word, width))
    for first, second in itertools.pairwise(words):
        counts[zlib.crc32(f"b:{first} {second}".encode()) % width] += 1
    return counts


def hash_one(text: str, width: int = DEFAULT_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """The features of one text as ``(columns, values)`` arrays (the request path)."""
    counts = _columns(text, width)
    weights = np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts))) + 1.0
    norm = float(np.sqrt(weights @ weights)) or 1.0
    return np.fromiter(counts.keys(), dtype=np.int64, count=len(counts)), weights / norm


def hash_features(texts: Sequence[str], width: int = DEFAULT_WIDTH) -> Sparse:
    """The hashed, weighted, normalised features of each text, as one CSR batch."""
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for text in texts:
        counts = _columns(text, width)
        weights = [1.0 + math.log(c) for c in counts.values()]
        norm = math.sqrt(sum(w * w for w in weights)) or 1.0
        indices.extend(counts)
        values.extend(w / norm for w in weights)
        indptr.append(len(indices))
    return Sparse(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        width,
    )
