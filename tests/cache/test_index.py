"""The semantic index's projection filter is exact: it finds what the full product finds."""

from __future__ import annotations

import numpy as np
import pytest

from majordome.cache._memory import _FIT_AT, _Index


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def brute(vectors: np.ndarray, query: np.ndarray, threshold: float) -> list[int]:
    scores = vectors @ query
    hits = np.flatnonzero(scores >= threshold)
    return hits[np.argsort(-scores[hits], kind="stable")].tolist()


@pytest.mark.parametrize("shape", ["clustered", "isotropic"])
def test_the_projected_search_finds_exactly_what_the_full_product_finds(shape: str) -> None:
    rng = np.random.default_rng(3)
    n, dim = _FIT_AT + 1500, 96
    if shape == "clustered":  # like sentence embeddings: most energy in a few directions
        rows = rng.standard_normal((n, 12)) @ rng.standard_normal((12, dim)) + 0.3 * rng.standard_normal((n, dim))
    else:
        rows = rng.standard_normal((n, dim))
    vectors = unit(rows)
    index = _Index(dim)
    for i, v in enumerate(vectors):
        index.add(f"{i}", v, 1e12, ())
    assert index.basis is not None  # projected from _FIT_AT rows on
    for trial in range(60):
        base = vectors[rng.integers(n)]
        query = unit((base + rng.uniform(0.0, 0.6) * rng.standard_normal(dim))[None, :])[0]
        threshold = float(rng.choice([0.5, 0.8, 0.9, 0.95, 0.99]))
        found = [int(d) for d, _ in index.search(query, threshold, 0.0, None)]
        assert found == brute(vectors, query, threshold), (trial, threshold)


def test_expired_rows_are_not_found_and_compaction_keeps_the_projection() -> None:
    rng = np.random.default_rng(5)
    dim = 32
    vectors = unit(rng.standard_normal((_FIT_AT + 10, dim)))
    index = _Index(dim)
    for i, v in enumerate(vectors):
        index.add(f"{i}", v, 10.0 if i % 3 else 1e12, ())
    now = 20.0
    target = next(i for i in range(len(vectors)) if i % 3 == 0)
    assert index.search(vectors[target], 0.999, now, None)[0][0] == f"{target}"
    assert index.search(vectors[1], 0.999, now, None) == []  # expired
    index.compact(now)
    assert index.size == sum(1 for i in range(len(vectors)) if i % 3 == 0)
    assert index.search(vectors[target], 0.999, now, None)[0][0] == f"{target}"
