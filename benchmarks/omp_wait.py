"""Single-query embedding latency of all-MiniLM-L6-v2 under the OpenMP settings of the environment.

torch's libgomp reads OMP_WAIT_POLICY / GOMP_SPINCOUNT once, when torch loads, so compare
settings across runs of this script (each in its own process), e.g.:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/omp_wait.py
    OMP_WAIT_POLICY=ACTIVE python benchmarks/omp_wait.py
    GOMP_SPINCOUNT=200000 python benchmarks/omp_wait.py

Each query (a SciFact claim, never repeated) is embedded alone with 1 and with 2 torch threads,
alternating; the script prints p50/p90/p99/max per thread count and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from majordome.bench.readers import data_dir
from majordome.knowledge.embeddings import SentenceTransformerEmbedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    import torch

    embedder = SentenceTransformerEmbedder(cache_size=0, wait_policy=None)
    path = data_dir() / "retrieval" / "scifact" / "queries.jsonl"
    claims = [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines()][: args.queries]
    embedder.embed(["warm up"])
    times: dict[int, list[float]] = {1: [], 2: []}
    for i, claim in enumerate(claims):
        for threads in (1, 2) if i % 2 else (2, 1):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            embedder.embed([f"{claim} ({threads})"])
            times[threads].append(time.perf_counter() - started)
    setting = {k: v for k, v in os.environ.items() if k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    print(f"environment: {setting or 'libgomp defaults'}; load average {os.getloadavg()}")
    for threads, values in times.items():
        ordered = sorted(v * 1000 for v in values)
        p50, p90, p99 = (ordered[min(len(ordered) - 1, int(len(ordered) * q))] for q in (0.5, 0.9, 0.99))
        print(f"{threads} thread(s): p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {ordered[-1]:.1f} ms")


if __name__ == "__main__":
    main()
