"""Lexical features that work in any language: hashed character n-grams and word n-grams.

Text is lower-cased and stripped of accents (creators often type "idees" for "idées"), then cut
into words; each word contributes its character 3- to 5-grams (padded with spaces, so prefixes
and suffixes count), and the text its word unigrams and bigrams. Features are hashed with CRC-32
(stable across processes, unlike ``hash()``) into ``width`` columns, weighted ``1 + log(count)``
and L2-normalised.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from majordome.router._linear import Sparse

__all__ = ["DEFAULT_WIDTH", "hash_features", "normalise_text"]

DEFAULT_WIDTH = 2**15
_WORD = re.compile(r"[\w$€%]+", re.UNICODE)
_MAX_CHARS = 2000


def normalise_text(text: str) -> str:
    """Lower-case, accents removed, at most 2,000 characters (head and tail of long texts)."""
    if len(text) > _MAX_CHARS:
        text = text[: _MAX_CHARS // 2] + " " + text[-_MAX_CHARS // 2 :]
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _features(text: str) -> Counter[str]:
    words = _WORD.findall(normalise_text(text))
    counts: Counter[str] = Counter()
    for word in words:
        counts["w:" + word] += 1
        padded = f" {word} "
        for size in (3, 4, 5):
            for start in range(len(padded) - size + 1):
                counts[padded[start : start + size]] += 1
    for first, second in itertools.pairwise(words):
        counts[f"b:{first} {second}"] += 1
    return counts


def hash_features(texts: Sequence[str], width: int = DEFAULT_WIDTH) -> Sparse:
    """The hashed, weighted, normalised features of each text, as one CSR batch."""
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for text in texts:
        columns: dict[int, float] = {}
        for feature, count in _features(text).items():
            column = zlib.crc32(feature.encode("utf-8")) % width
            columns[column] = columns.get(column, 0.0) + 1.0 + math.log(count)
        norm = math.sqrt(sum(v * v for v in columns.values())) or 1.0
        for column, value in columns.items():
            indices.append(column)
            values.append(value / norm)
        indptr.append(len(indices))
    return Sparse(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        width,
    )
