from __future__ import annotations

import numpy as np
import pytest

from majordome.knowledge import Embedder, SentenceTransformerEmbedder, StaticEmbedder
from majordome.router.router import default_components


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    embedder = default_components().embedder
    assert isinstance(embedder, StaticEmbedder)
    return embedder


def test_static_vectors_are_normalised_and_meaningful(static: StaticEmbedder) -> None:
    vectors = static.embed(
        [
            "write a caption for my beach photo",
            "caption for my pic at the beach",
            "how much will I earn with 200 fans paying 9.99 a month",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert isinstance(static, Embedder)


def test_long_texts_keep_head_and_tail(static: StaticEmbedder) -> None:
    ids = static.token_ids("word " * 5000)
    assert len(ids) == static.max_tokens
    assert np.allclose(np.linalg.norm(static.embed(["word " * 5000]), axis=1), 1.0)
    assert np.all(static.embed([""]) == 0)  # nothing to average: a zero vector, not NaN


def test_the_table_comes_from_the_disk_cache(static: StaticEmbedder, tmp_path: pytest.TempPathFactory) -> None:
    again = StaticEmbedder.for_model()
    assert again.name == static.name
    assert np.array_equal(again.embed(["bonjour"]), static.embed(["bonjour"]))


def test_sentence_transformer_embedder_offline_default_and_cache() -> None:
    embedder = SentenceTransformerEmbedder()
    first = embedder.embed(["hello there", "bonjour", "hello there"])
    assert first.shape == (3, 384)
    assert np.allclose(first[0], first[2])
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert embedder.name == "sentence-transformers/all-MiniLM-L6-v2" and embedder.dim == 384
