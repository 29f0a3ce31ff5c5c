"""Ingestion throughput: KnowledgeBase.ingest against the raw embedder on the same chunks.

Documents from SciFact (English) and PIAF (French) are chunked once to know the chunk texts;
then, alternately (raw, pipeline, raw, pipeline), the same texts are embedded by a fresh embedder
alone ("raw": ``embed_passages`` over the whole list, the embedder's best case) and the same
documents are ingested by a fresh knowledge base (read → language detection → chunking →
embedding → BM25 → Qdrant Edge upsert). Every run uses a new embedder instance, so nothing comes
from a cache; model loading is outside the timings.

    python benchmarks/kb_ingest.py                    # 400 + 400 documents, MiniLM
    python benchmarks/kb_ingest.py --embedder e5 --documents 100
    python benchmarks/kb_ingest.py --quick            # 60 + 60 documents

Target (issue 5): pipeline chunks/s >= 0.8 x raw embedder chunks/s.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import command_line, machine, print_table, write_json

from majordome.bench.readers import data_dir
from majordome.knowledge.analysis import Analyzer
from majordome.knowledge.base import KnowledgeBase, embed_texts
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.documents import Document
from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder


def documents(per_set: int) -> list[Document]:
    out = []
    for name in ("scifact", "piaf"):
        lines = (data_dir() / "retrieval" / name / "corpus.jsonl").read_text("utf-8").splitlines()
        for line in lines[:per_set]:
            row = json.loads(line)
            out.append(Document(id=row["_id"], tenant="bench", title=row["title"] or None, text=row["text"]))
    return out


def fresh(which: str) -> Embedder:
    embedder: Embedder
    if which == "minilm":
        embedder = SentenceTransformerEmbedder()
    else:
        from majordome.knowledge.e5 import E5Embedder

        embedder = E5Embedder()
    embed_texts(embedder, ["load the model before the clock starts"], "passage")
    return embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedder", choices=["minilm", "e5"], default="minilm")
    parser.add_argument("--documents", type=int, default=400, help="documents per dataset")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    docs = documents(60 if args.quick else args.documents)
    analyzer, chunker = Analyzer(), Chunker()
    texts = [
        c.embedding_text
        for d in docs
        for c in chunker.chunk(d.model_copy(update={"language": analyzer.language_of(d.text)}))
    ]
    report: dict[str, Any] = {
        "command": command_line(),
        "machine": machine(),
        "documents": len(docs),
        "chunks": len(texts),
        "runs": [],
    }
    rows = []
    for round_ in range(1 if args.quick else args.rounds):
        embedder = fresh(args.embedder)
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        embed_texts(embedder, texts, "passage")
        raw_s, raw_cpu = time.perf_counter() - started, time.process_time() - cpu
        embedder = fresh(args.embedder)
        with tempfile.TemporaryDirectory() as tmp:
            kb = KnowledgeBase.open(Path(tmp) / "kb", embedder=embedder)
            started, cpu = time.perf_counter(), time.process_time()
            summary = kb.ingest(docs, tenant="bench")
            ingest_s, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu
            kb.close()
        if summary.chunks != len(texts):
            raise SystemExit(f"the pipeline stored {summary.chunks} chunks, the chunker made {len(texts)}")
        run = {
            "round": round_,
            "raw_s": raw_s,
            "raw_cpu_s": raw_cpu,
            "raw_chunks_per_s": len(texts) / raw_s,
            "pipeline_s": ingest_s,
            "pipeline_cpu_s": ingest_cpu,
            "pipeline_chunks_per_s": len(texts) / ingest_s,
            "ratio": raw_s / ingest_s,
            "load_average_1m_before": load,
            "load_average_1m_after": os.getloadavg()[0],
        }
        report["runs"].append(run)
        rows.append(
            [
                round_,
                f"{run['raw_chunks_per_s']:.1f}",
                f"{run['pipeline_chunks_per_s']:.1f}",
                f"{run['ratio']:.3f}",
                f"{load:.1f}",
            ]
        )
    raw_total = sum(r["raw_s"] for r in report["runs"])
    pipeline_total = sum(r["pipeline_s"] for r in report["runs"])
    report["embedder"] = args.embedder
    report["ratio"] = raw_total / pipeline_total
    print_table(
        f"ingestion, {len(docs)} documents → {len(texts)} chunks ({args.embedder})",
        ["round", "raw chunks/s", "pipeline chunks/s", "ratio", "load before"],
        rows,
    )
    print(f"pipeline / raw throughput over all rounds: {report['ratio']:.3f}")
    path = write_json(f"kb_ingest-{args.embedder}" + ("-quick" if args.quick else ""), report)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
