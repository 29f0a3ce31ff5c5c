from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from majordome._errors import BadRequestError, ConfigurationError
from majordome.knowledge.store import (
    SHARED,
    ClientStore,
    CollectionInfo,
    EdgeStore,
    SearchFilters,
    SparseVector,
    StoredChunk,
    TenantRequired,
    VectorStore,
)

INFO = CollectionInfo("test-embedder", 4, "test-analyzer")
Factory = Callable[[Path], VectorStore]
BACKENDS: dict[str, Factory] = {
    "edge": lambda tmp: EdgeStore(tmp / "kb", INFO),
    "client-local": lambda tmp: ClientStore(INFO, location=":memory:"),
}


def chunk(cid: str, tenant: str, doc: str, vector: list[float], terms: list[int], **payload: str) -> StoredChunk:
    return StoredChunk(
        cid,
        np.array(vector, dtype=np.float32),
        SparseVector(terms, [1.0] * len(terms)),
        {"tenant": tenant, "doc_id": doc, "text": cid, **payload},
    )


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()


def seed(store: VectorStore) -> None:
    store.upsert(
        [
            chunk("alice-1", "alice", "a", [1, 0, 0, 0], [1, 2], kind="CHAT_CLOSER_PLAY", language="fr"),
            chunk("alice-2", "alice", "a", [0, 1, 0, 0], [3], kind="VIRAL_STRUCTURE", language="en"),
            chunk("bob-1", "bob", "b", [1, 0, 0, 0], [1, 2], kind="CHAT_CLOSER_PLAY", language="fr"),
            chunk("shared-1", SHARED, "s", [0.9, 0.1, 0, 0], [2, 4], kind="CHAT_CLOSER_PLAY", language="fr"),
        ]
    )


QUERY = np.array([1, 0, 0, 0], dtype=np.float32)


def test_dense_sparse_and_hybrid_see_own_and_shared_only(store: VectorStore) -> None:
    seed(store)
    dense = [h.chunk_id for h in store.search("alice", dense=QUERY, k=10)]
    assert dense[0] == "alice-1" and set(dense) == {"alice-1", "alice-2", "shared-1"}
    sparse = [h.chunk_id for h in store.search("alice", sparse=SparseVector([1, 2], [1.0, 1.0]), k=10)]
    assert sparse == ["alice-1", "shared-1"]  # term 1 is rarer than 2: alice-1 matches both
    hybrid = [h.chunk_id for h in store.search("alice", dense=QUERY, sparse=SparseVector([1, 2], [1, 1]), k=10)]
    assert hybrid[0] == "alice-1" and "bob-1" not in hybrid
    assert [h.chunk_id for h in store.search(SHARED, dense=QUERY, k=10)] == ["shared-1"]


def test_hits_carry_their_dense_vector_only_when_asked(store: VectorStore) -> None:
    seed(store)
    for dense, sparse in ((QUERY, None), (None, SparseVector([1, 2], [1.0, 1.0])), (QUERY, SparseVector([1], [1.0]))):
        hits = store.search("alice", dense=dense, sparse=sparse, k=10, with_vectors=True)
        by_id = {h.chunk_id: h.vector for h in hits}
        assert by_id["alice-1"] is not None and np.allclose(by_id["alice-1"], [1, 0, 0, 0])
        assert all(h.vector is None for h in store.search("alice", dense=dense, sparse=sparse, k=10))


def test_filters_narrow_and_threshold_drops_weak_matches(store: VectorStore) -> None:
    seed(store)
    kinds = store.search("alice", dense=QUERY, k=10, filters=SearchFilters(kind=["VIRAL_STRUCTURE"]))
    assert [h.chunk_id for h in kinds] == ["alice-2"]
    assert [h.chunk_id for h in store.search("alice", dense=QUERY, k=10, score_threshold=0.999)] == ["alice-1"]
    assert store.search("alice", dense=QUERY, filters=SearchFilters(language="de")) == []


def test_a_search_without_a_tenant_is_an_error(store: VectorStore) -> None:
    seed(store)
    for tenant in (None, "", "  "):
        with pytest.raises(TenantRequired):
            store.search(tenant, dense=QUERY)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError):
        store.search("alice")
    with pytest.raises(BadRequestError):
        store.search("alice", dense=np.zeros(3))
    with pytest.raises(BadRequestError):
        store.upsert([chunk("x", "alice", "a", [1, 0, 0], [1])])


def test_replace_document_is_idempotent_and_drops_old_chunks(store: VectorStore) -> None:
    seed(store)
    new = [chunk("alice-1", "alice", "a", [1, 0, 0, 0], [1, 2]), chunk("alice-3", "alice", "a", [0, 0, 1, 0], [5])]
    assert store.replace_document("alice", "a", new) == 1  # alice-2 is gone
    assert store.replace_document("alice", "a", new) == 0
    assert sorted(store.document_chunk_ids("alice", "a")) == ["alice-1", "alice-3"]
    assert store.count("alice") == 2 and store.count() == 4
    with pytest.raises(BadRequestError):
        store.replace_document("alice", "a", [chunk("b", "bob", "a", [1, 0, 0, 0], [1])])


def test_delete_document_and_tenant_touch_nobody_else(store: VectorStore) -> None:
    seed(store)
    store.delete_document("alice", "b")  # bob's document id, asked by alice: nothing happens
    assert store.count("bob") == 1
    store.delete_document("alice", "a")
    assert store.count("alice") == 0 and store.count("bob") == 1 and store.count(SHARED) == 1
    store.delete_tenant("bob")
    assert store.count() == 1


def test_edge_store_persists_and_refuses_another_embedder(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "kb", INFO) as first:
        seed(first)
    with EdgeStore(tmp_path / "kb", INFO) as again:
        assert again.count() == 4
        assert [h.chunk_id for h in again.search("bob", dense=QUERY, k=1)] == ["bob-1"]
    with pytest.raises(ConfigurationError, match="test-embedder"):
        EdgeStore(tmp_path / "kb", CollectionInfo("other-model", 8, "test-analyzer"))


def test_client_store_persists_and_refuses_another_embedder(tmp_path: Path) -> None:
    first = ClientStore(INFO, path=tmp_path / "local")
    seed(first)
    first.close()
    again = ClientStore(INFO, path=tmp_path / "local")
    assert again.count() == 4
    again.close()
    with pytest.raises(ConfigurationError, match="test-embedder"):
        ClientStore(CollectionInfo("other-model", 4, "test-analyzer"), path=tmp_path / "local")


TENANTS = ["alice", "bob", "carol", SHARED]


@pytest.fixture(scope="module")
def shared_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorStore]]:
    """One store per back end for the whole property test (emptied before each example)."""
    stores = {name: factory(tmp_path_factory.mktemp(name)) for name, factory in BACKENDS.items()}
    yield stores
    for store in stores.values():
        store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    owners=st.lists(st.sampled_from(TENANTS), min_size=1, max_size=30),
    asker=st.sampled_from(TENANTS),
    data=st.data(),
)
def test_property_a_tenant_never_sees_a_foreign_chunk(
    shared_stores: dict[str, VectorStore], owners: list[str], asker: str, data: st.DataObject
) -> None:
    rng = np.random.default_rng(len(owners))
    kinds = ["CHAT_CLOSER_PLAY", "VIRAL_STRUCTURE", "free"]
    chunks = [
        chunk(
            f"c{i}",
            owner,
            f"d{i % 4}",
            list(rng.normal(size=4)),
            sorted({int(t) for t in rng.integers(0, 20, 3)}),
            kind=kinds[i % 3],
            language=["fr", "en"][i % 2],
        )
        for i, owner in enumerate(owners)
    ]
    for name, store in shared_stores.items():
        for tenant in TENANTS:
            store.delete_tenant(tenant)
        assert store.count() == 0
        store.upsert(chunks)
        query = rng.normal(size=4)
        terms = data.draw(st.lists(st.integers(0, 25), max_size=5, unique=True))
        kind = data.draw(st.none() | st.lists(st.sampled_from(kinds), min_size=1, max_size=3))
        k = data.draw(st.integers(1, 40))
        visible = {asker, SHARED}
        for dense, sparse in (
            (query, None),
            (None, SparseVector(terms, [1.0] * len(terms))),
            (query, SparseVector(terms, [1.0] * len(terms))),
        ):
            if dense is None and not terms:
                continue
            hits = store.search(asker, dense=dense, sparse=sparse, k=k, filters=SearchFilters(kind=kind))
            assert all(h.payload["tenant"] in visible for h in hits), name
            assert len(hits) <= k
            expected = {
                c.chunk_id
                for c in chunks
                if c.payload["tenant"] in visible and (kind is None or c.payload["kind"] in kind)
            }
            assert {h.chunk_id for h in hits} <= expected
            if dense is not None and sparse is None:
                assert len(hits) == min(k, len(expected))  # dense sees every visible chunk
