"""Retrieval quality on a BEIR-layout dataset, through majordome's own ingest and search path.

The corpus is ingested into a fresh knowledge base (chunked, embedded, BM25-encoded, stored in
the configured store under one tenant), every judged query is searched as a user would search,
and the chunks returned are turned back into documents (a document ranks where its best chunk
ranks) before scoring nDCG@10 (gain 2^rel − 1, log2 discount, ideal ranking from the
judgements) and Recall@10. Nothing here bypasses the pipeline that answers users.

    majordome kb eval ../shared/datasets/retrieval/scifact --mode dense --mode hybrid
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from majordome._errors import ConfigurationError
from majordome.knowledge.base import KnowledgeBase, SearchMode, embed_texts
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.embeddings import Embedder

__all__ = ["EvalResult", "evaluate_beir", "ndcg_at", "read_qrels", "read_queries", "recall_at"]

TENANT = "evaluation"
_BLOCK = 256  # queries embedded per batch (well under the embedders' cache size)


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    mode: str
    queries: int
    ndcg10: float
    recall10: float
    query_p50_ms: float
    query_p99_ms: float


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            queries[str(row["_id"])] = str(row["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{path}, line {number}: expected a JSON object with _id and text") from exc
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
                raise ConfigurationError(f"{path}: expected the header query-id, corpus-id, score")
            for number, row in enumerate(reader, 2):
                if not row:
                    continue
                try:
                    qrels.setdefault(row[0], {})[row[1]] = int(row[2])
                except (IndexError, ValueError) as exc:
                    raise ConfigurationError(
                        f"{path}, line {number}: expected query-id, corpus-id, integer score"
                    ) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    return qrels


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    gains = [(2 ** relevant.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranked[:k])]
    ideal = sorted(relevant.values(), reverse=True)[:k]
    best = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return sum(gains) / best if best > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def evaluate_beir(
    folder: str | Path,
    *,
    modes: Sequence[SearchMode] = ("dense", "sparse", "hybrid"),
    embedder: Embedder | None = None,
    store_path: str | Path | None = None,
    max_queries: int | None = None,
    progress: Callable[[str], None] | None = None,
    chunker: Chunker | None = None,
) -> tuple[list[EvalResult], dict[str, float]]:
    """Ingest ``folder``'s corpus into a fresh embedded knowledge base (``store_path``, else a
    temporary folder), search every judged query in each mode, and score. Returns the results
    and the ingest figures (documents, chunks, seconds, chunks/s). ``chunker`` replaces the
    default one (e.g. one chunk per document, the setting of BEIR's published figures)."""
    folder = Path(folder)
    say = progress or (lambda _: None)
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = read_queries(folder / "queries.jsonl")
    judged = [q for q in queries if q in qrels]
    if max_queries is not None:
        judged = judged[:max_queries]
    if not judged:
        raise ConfigurationError(f"{folder}: no query of queries.jsonl is judged in qrels/test.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase.open(Path(store_path or tmp) / "kb", embedder=embedder, chunker=chunker)
        try:
            say(f"ingesting {folder / 'corpus.jsonl'}")
            summary = kb.ingest(folder, tenant=TENANT, progress=progress is not None)
            if summary.documents == 0:
                raise ConfigurationError(f"{folder}: nothing ingested ({summary.summary()})")
            ingest = {
                "documents": float(summary.documents),
                "chunks": float(summary.chunks),
                "seconds": summary.seconds,
                "chunks_per_s": summary.chunks / summary.seconds if summary.seconds else math.nan,
            }
            results = []
            for mode in modes:
                say(f"searching {len(judged)} queries ({mode})")
                ndcg = recall = 0.0
                times = []
                for position, qid in enumerate(judged):
                    if mode != "sparse" and position % _BLOCK == 0:
                        # Embed the next block of queries in one batch, into the embedder's cache: the
                        # searches below then run the user path with their embedding already computed.
                        block = [queries[q] for q in judged[position : position + _BLOCK]]
                        embed_texts(kb.embedder, block, "query")
                    started = time.perf_counter()
                    hits = kb.search(queries[qid], tenant=TENANT, k=30, mode=mode)
                    times.append(time.perf_counter() - started)
                    ranked = list(dict.fromkeys(h.chunk.document_id for h in hits))
                    ndcg += ndcg_at(ranked, qrels[qid])
                    recall += recall_at(ranked, qrels[qid])
                times.sort()
                results.append(
                    EvalResult(
                        folder.name,
                        mode,
                        len(judged),
                        ndcg / len(judged),
                        recall / len(judged),
                        times[len(times) // 2] * 1000,
                        times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
                    )
                )
        finally:
            kb.close()
    return results, ingest
