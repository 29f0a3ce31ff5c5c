"""Retrieval quality on the BEIR-layout sets, through majordome's ingest and search path.

    python benchmarks/kb_retrieval.py                         # SciFact and PIAF, default embedder
    python benchmarks/kb_retrieval.py --dataset piaf --embedder e5
    python benchmarks/kb_retrieval.py --quick                 # 50 queries each
    python benchmarks/kb_retrieval.py --dataset scifact --whole-documents   # one chunk per document

Data: MAJORDOME_DATA_DIR or ../shared/datasets, folder retrieval/<dataset>. Targets (issue 5):
SciFact dense all-MiniLM-L6-v2 0.645 +/- 0.01, hybrid >= 0.71; PIAF >= 0.80 with the default.
"""

from __future__ import annotations

import argparse

from _common import command_line, machine, print_table, write_json

from majordome.bench.readers import data_dir
from majordome.knowledge.base import default_embedder
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.evaluate import evaluate_beir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", choices=["scifact", "piaf"])
    parser.add_argument("--embedder", default=None, help="minilm (default), e5, or a sentence-transformers name")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--whole-documents",
        action="store_true",
        help="one chunk per document (the embedder truncates): the setting of the published BEIR figures",
    )
    args = parser.parse_args()
    embedder = default_embedder(args.embedder)
    report = {"command": command_line(), "machine": machine(), "embedder": embedder.name, "datasets": {}}
    rows = []
    for name in args.dataset or ["scifact", "piaf"]:
        results, ingest = evaluate_beir(
            data_dir() / "retrieval" / name,
            embedder=embedder,
            max_queries=50 if args.quick else None,
            chunker=Chunker(max_tokens=1_000_000, overlap=0) if args.whole_documents else None,
            progress=lambda message: print(f"   {message}", flush=True),
        )
        report["datasets"][name] = {"ingest": ingest, "results": [r.__dict__ for r in results]}
        for r in results:
            rows.append([name, r.mode, r.queries, f"{r.ndcg10:.4f}", f"{r.recall10:.4f}", f"{r.query_p50_ms:.1f}"])
        print(f"{name}: {ingest['chunks']:.0f} chunks in {ingest['seconds']:.0f} s ({ingest['chunks_per_s']:.1f}/s)")
    print_table(f"retrieval ({embedder.name})", ["dataset", "mode", "queries", "nDCG@10", "Recall@10", "p50 ms"], rows)
    tag = "-".join([(args.embedder or "minilm").replace("/", "_"), *(args.dataset or ["scifact", "piaf"])])
    tag += "-whole" if args.whole_documents else ""
    path = write_json(f"kb_retrieval-{tag}" + ("-quick" if args.quick else ""), report)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
