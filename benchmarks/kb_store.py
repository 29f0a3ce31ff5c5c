"""Vector store query latency: Qdrant Edge (the embedded default) and qdrant-client's local mode.

Random unit vectors (384 dimensions, as all-MiniLM-L6-v2 and e5-small) with sparse vectors of 30
terms drawn from a 50,000-term vocabulary, 50 tenants plus shared items; every query is a real
majordome search (tenant filter = own + shared, top 10): dense, sparse (BM25 with Qdrant's IDF)
and hybrid (both, fused by RRF over 100 candidates each). Store only: the query embedding is
not included here (see benchmarks/kb_retrieval.py for the end-to-end figure).

    python benchmarks/kb_store.py                      # Edge at 100k chunks, local mode at 20k
    python benchmarks/kb_store.py --quick              # 10k and 2k

Target (issue 5): p99 <= 30 ms at 100k chunks, including the query embedding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import command_line, machine, print_table, summary_ms, write_json

from majordome.knowledge.store import (
    SHARED,
    ClientStore,
    CollectionInfo,
    EdgeStore,
    SparseVector,
    StoredChunk,
    VectorStore,
)

DIM = 384
INFO = CollectionInfo("random-unit-vectors", DIM, "random-terms")


def chunks(n: int, seed: int = 0) -> list[StoredChunk]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for i in range(n):
        terms = np.sort(rng.choice(50_000, 30, replace=False))
        tenant = SHARED if i % 10 == 0 else f"creator_{i % 50}"
        payload = {"tenant": tenant, "doc_id": f"d{i // 4}", "kind": "CHAT_CLOSER_PLAY", "language": "fr", "text": ""}
        out.append(StoredChunk(f"c{i}", vectors[i], SparseVector(terms.tolist(), rng.random(30).tolist()), payload))
    return out


def load(store: VectorStore, data: list[StoredChunk], batch: int = 1000) -> float:
    started = time.perf_counter()
    for start in range(0, len(data), batch):
        store.upsert(data[start : start + batch])
    return time.perf_counter() - started


def measure(store: VectorStore, queries: int, seed: int = 1) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    results: dict[str, dict[str, float]] = {}
    for mode in ("dense", "sparse", "hybrid"):
        times = []
        for q in range(queries):
            vector = rng.normal(size=DIM).astype(np.float32)
            vector /= np.linalg.norm(vector)
            sparse = SparseVector(np.sort(rng.choice(50_000, 8, replace=False)).tolist(), [1.0] * 8)
            tenant = f"creator_{q % 50}"
            started = time.perf_counter()
            store.search(
                tenant,
                dense=None if mode == "sparse" else vector,
                sparse=None if mode == "dense" else sparse,
                k=10,
            )
            times.append(time.perf_counter() - started)
        results[mode] = summary_ms(times)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    edge_n, local_n = (10_000, 2_000) if args.quick else (100_000, 20_000)
    queries = 50 if args.quick else args.queries
    report: dict[str, Any] = {"command": command_line(), "machine": machine(), "dim": DIM}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = chunks(edge_n)
        edge = EdgeStore(Path(tmp) / "edge", INFO)
        loaded = load(edge, data)
        plain = measure(edge, queries)
        started = time.perf_counter()
        edge.optimize()
        optimised_in = time.perf_counter() - started
        indexed = measure(edge, queries)
        edge.close()
        local = ClientStore(INFO, location=":memory:")
        local_loaded = load(local, data[:local_n])
        local_times = measure(local, max(10, queries // 10))
        local.close()
    report["edge"] = {"chunks": edge_n, "load_s": loaded, "optimize_s": optimised_in, "before_optimize": plain}
    report["edge"]["after_optimize"] = indexed
    report["client_local_mode"] = {"chunks": local_n, "load_s": local_loaded, "latency": local_times}
    for label, stats in (
        (f"Qdrant Edge, {edge_n:,} chunks, no index yet", plain),
        (f"Qdrant Edge, {edge_n:,} chunks, optimised ({optimised_in:.0f} s)", indexed),
        (f"qdrant-client local mode, {local_n:,} chunks", local_times),
    ):
        for mode, s in stats.items():
            rows.append([label, mode, f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}"])
    print_table("vector store query latency (ms, tenant-filtered top 10)", ["store", "mode", "p50", "p99"], rows)
    print(f"load: Edge {edge_n / loaded:,.0f} chunks/s; local mode {local_n / local_loaded:,.0f} chunks/s")
    path = write_json("kb_store-quick" if args.quick else "kb_store", report)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
