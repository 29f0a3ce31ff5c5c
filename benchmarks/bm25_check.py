"""Validation of majordome's BM25 analysis and sparse vectors against the retrieval baselines.

Every document of a BEIR-layout dataset (text = title + " " + text) is analysed and encoded by
:class:`majordome.knowledge.analysis.SparseEncoder` (``avgdl`` fitted on the corpus), and each
judged query is scored the way Qdrant will score it with ``Modifier.IDF``: for every distinct
query index, ``idf = ln(1 + (N - n + 0.5) / (n + 0.5))`` (``N`` documents, ``n`` of them holding
the index) times the document's stored value, summed. Hashed indices are used as they are, so
collisions count as they will in Qdrant. Reported: nDCG@10 (gain 2^rel - 1, log2 discount, ideal
ranking from the judgements) and Recall@10 over the judged queries, ties broken by corpus order;
and the time to analyse and to encode the corpus.

    python benchmarks/bm25_check.py                        # scifact and piaf, language given
    python benchmarks/bm25_check.py --language detect      # every text's language detected
    python benchmarks/bm25_check.py --qdrant 50           # also check 50 queries against Qdrant itself
    python benchmarks/bm25_check.py /path/to/datasets --datasets scifact --save

The data directory is the argument, else ``$MAJORDOME_DATA_DIR``, else ``../shared/datasets``;
the datasets are under its ``retrieval/`` folder. Baselines (bm25s 0.3.16, lucene, k1 1.2,
b 0.75, bm25s stop words + PyStemmer), from ``retrieval/README.md``: SciFact nDCG@10 0.6791,
Recall@10 0.8078; PIAF 0.7874 and 0.8855. Target: within about 0.01 (above is fine).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import command_line, machine, print_table, write_json

from majordome.bench.readers import data_dir
from majordome.knowledge.analysis import Analyzer, SparseEncoder, SparseVector

LANGUAGE = {"scifact": "en", "piaf": "fr"}
BASELINE = {"scifact": (0.6791, 0.8078), "piaf": (0.7874, 0.8855)}
CUTOFF = 10


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            if line.strip():
                query, document, score = line.rstrip("\n").split("\t")
                qrels[query][document] = int(score)
    return qrels


class QdrantLikeIndex:
    """An inverted index over stored sparse vectors, scoring queries as Qdrant's IDF modifier does."""

    def __init__(self, vectors: list[SparseVector]) -> None:
        sizes = np.array([len(v) for v in vectors], dtype=np.int64)
        indices = np.fromiter((i for v in vectors for i in v.indices), dtype=np.int64, count=int(sizes.sum()))
        values = np.fromiter((x for v in vectors for x in v.values), dtype=np.float64, count=int(sizes.sum()))
        documents = np.repeat(np.arange(len(vectors)), sizes)
        order = np.argsort(indices, kind="stable")
        self.documents, self.values = documents[order], values[order]
        keys, starts, counts = np.unique(indices[order], return_index=True, return_counts=True)
        self.postings = {int(k): (int(s), int(s + c)) for k, s, c in zip(keys, starts, counts, strict=True)}
        self.size = len(vectors)  # N: every point holds the sparse vector

    def idf(self, n: int) -> float:
        return math.log(1.0 + (self.size - n + 0.5) / (n + 0.5))

    def search(self, query: SparseVector, k: int) -> list[tuple[int, float]]:
        """The ``k`` best documents (position in the corpus, score) with a score above zero."""
        scores = np.zeros(self.size)
        for index, weight in zip(query.indices, query.values, strict=True):
            span = self.postings.get(index)
            if span is None:
                continue
            start, end = span
            scores[self.documents[start:end]] += weight * self.idf(end - start) * self.values[start:end]
        hits = np.flatnonzero(scores > 0)
        ranked = hits[np.lexsort((hits, -scores[hits]))]  # score descending, then corpus order
        return [(int(i), float(scores[i])) for i in ranked[:k]]


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum((2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((rel for rel in relevant.values() if rel > 0), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(rank + 2) for rank, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def compare_with_qdrant(
    vectors: list[SparseVector], index: QdrantLikeIndex, queries: list[SparseVector]
) -> dict[str, Any]:
    """Run ``queries`` through qdrant-client's local mode (in memory, ``Modifier.IDF``) and compare
    its top 10 with this script's scorer: the same scores at every rank (float32 rounding aside), the
    same documents in the same order up to ties."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "bm25_check",
        vectors_config={},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upload_points(
        "bm25_check", [models.PointStruct(id=i, vector={"bm25": v.to_qdrant()}) for i, v in enumerate(vectors)]
    )
    same_order, same_scores, largest_gap = 0, 0, 0.0
    for query in queries:
        points = client.query_points("bm25_check", query=query.to_qdrant(), using="bm25", limit=CUTOFF).points
        ours = index.search(query, CUTOFF)
        same_order += [int(p.id) for p in points] == [i for i, _ in ours]
        gaps = [abs(p.score - score) / max(abs(score), 1e-9) for p, (_, score) in zip(points, ours, strict=False)]
        same_scores += len(points) == len(ours) and all(gap < 1e-5 for gap in gaps)  # tied documents may swap
        largest_gap = max([largest_gap, *gaps])
    client.close()
    return {
        "queries": len(queries),
        "same_top10": same_order,
        "same_top10_scores": same_scores,
        "largest_relative_score_gap": largest_gap,
    }


def check(root: Path, name: str, detect: bool, qdrant_queries: int = 0) -> dict[str, Any]:
    folder = root / "retrieval" / name
    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    judged = [qid for qid in qrels if qid in queries]
    language = None if detect else LANGUAGE[name]
    texts = [f"{doc['title']} {doc['text']}".strip() for doc in corpus]
    ids = [doc["_id"] for doc in corpus]

    encoder = SparseEncoder(Analyzer())  # a fresh analyzer: its term cache starts cold
    started = time.perf_counter()
    terms = encoder.analyzer.analyze_many(texts, language)
    analysed = time.perf_counter() - started
    lengths = [len(t) for t in terms if t]
    encoder.avgdl = sum(lengths) / len(lengths)
    started = time.perf_counter()
    vectors = encoder.encode_terms(terms)
    encoded = time.perf_counter() - started
    started = time.perf_counter()
    again = encoder.analyzer.analyze_many(texts, language)
    warm = time.perf_counter() - started
    assert again == terms

    index = QdrantLikeIndex(vectors)
    started = time.perf_counter()
    query_vectors = [encoder.encode_query(queries[qid], language) for qid in judged]
    query_time = time.perf_counter() - started
    ndcg, recall = [], []
    for qid, vector in zip(judged, query_vectors, strict=True):
        ranked = [ids[i] for i, _ in index.search(vector, CUTOFF)]
        ndcg.append(ndcg_at(ranked, qrels[qid], CUTOFF))
        recall.append(recall_at(ranked, qrels[qid], CUTOFF))
    qdrant = compare_with_qdrant(vectors, index, query_vectors[:qdrant_queries]) if qdrant_queries else None
    detected = None
    if detect:
        found = [encoder.analyzer.language_of(text) for text in texts[:500]]
        detected = sum(lang == LANGUAGE[name] for lang in found) / len(found)
    return {
        "dataset": name,
        "language": language or "detected",
        "documents": len(texts),
        "queries": len(judged),
        "avgdl": encoder.avgdl,
        "distinct_indices": len(index.postings),
        "ndcg@10": float(np.mean(ndcg)),
        "recall@10": float(np.mean(recall)),
        "baseline_ndcg@10": BASELINE[name][0],
        "baseline_recall@10": BASELINE[name][1],
        "analyse_s": analysed,
        "analyse_docs_per_s": len(texts) / analysed,
        "analyse_warm_s": warm,
        "encode_s": encoded,
        "encode_docs_per_s": len(texts) / encoded,
        "queries_per_s": len(judged) / query_time,
        "documents_detected_as_expected": detected,
        "qdrant_local_mode": qdrant,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", help="data directory (default: $MAJORDOME_DATA_DIR or ../shared/datasets)")
    parser.add_argument("--datasets", nargs="+", default=["scifact", "piaf"], choices=sorted(LANGUAGE))
    parser.add_argument("--language", choices=["given", "detect"], default="given")
    parser.add_argument(
        "--qdrant",
        type=int,
        default=0,
        metavar="N",
        help="also run the first N queries through qdrant-client's local mode and compare (about 0.5 s a query)",
    )
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/bm25_check[-detect].json")
    args = parser.parse_args()

    root = data_dir(args.data)
    results = [check(root, name, args.language == "detect", args.qdrant) for name in args.datasets]
    print_table(
        f"BM25 with majordome's analysis, scored as Qdrant's IDF modifier does ({args.language} language)",
        ["dataset", "nDCG@10", "baseline", "Recall@10", "baseline", "analyse docs/s (cold)", "encode docs/s"],
        [
            [
                r["dataset"],
                r["ndcg@10"],
                r["baseline_ndcg@10"],
                r["recall@10"],
                r["baseline_recall@10"],
                round(r["analyse_docs_per_s"]),
                round(r["encode_docs_per_s"]),
            ]
            for r in results
        ],
    )
    for r in results:
        print(
            f"{r['dataset']}: {r['documents']} documents analysed in {r['analyse_s']:.2f} s "
            f"({r['analyse_warm_s']:.2f} s again, warm cache), encoded in {r['encode_s']:.2f} s; "
            f"avgdl {r['avgdl']:.1f}; {r['queries']} queries at {r['queries_per_s']:.0f}/s"
            + (
                f"; {r['documents_detected_as_expected']:.1%} of the first 500 documents detected as expected"
                if r["documents_detected_as_expected"] is not None
                else ""
            )
        )
        if r["qdrant_local_mode"]:
            q = r["qdrant_local_mode"]
            print(
                f"  qdrant-client local mode: {q['same_top10_scores']}/{q['queries']} queries with the same top-10 "
                f"scores ({q['same_top10']} in the same order: the rest swap tied documents), "
                f"largest relative score gap {q['largest_relative_score_gap']:.1e}"
            )
    if args.save:
        suffix = "" if args.language == "given" else "-detect"
        write_json(f"bm25_check{suffix}", {"command": command_line(), "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
