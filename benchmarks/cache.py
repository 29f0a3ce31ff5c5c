"""The response cache: is a semantic hit safe, and what does a hit cost?

Safety: ``benchmarks/data/semantic_pairs.jsonl`` holds labelled prompt pairs (English and French;
same meaning or not, with hard negatives: other prices, names, dates, quantities, negations). For
each embedder the cosine of every pair is computed; as a function of the threshold, *false hits*
are different-meaning pairs at or above it and *true hits* same-meaning pairs at or above it,
without a guard, with the number guard (the numbers, dates and number words of both prompts must
be equal: ``majordome.cache.numbers_of``) and with the full guard (numbers, negations and
capitalised names equal: ``majordome.cache.guard_of``). The pairs are split in two halves (alternately, within each
language and label): the threshold is chosen on the first half as the lowest giving false hits
≤ 1 %, and reported on the second.

Cost of a lookup: exact ``get`` p50 in process (target ≤ 0.3 ms) and through Redis on loopback
(≤ 2 ms); semantic lookup p50 with 100k entries in one partition (≤ 5 ms), a hit and a miss, in
process and (with Redis) through ``RedisCache`` once its local mirror is up to date. The entries
are the router's static embeddings of 100k real sentences from ``MAJORDOME_DATA_DIR`` (SciFact,
PIAF, MMLU), not random vectors, which have none of the structure of real ones.

    python benchmarks/cache.py                       # Redis from MAJORDOME_TEST_REDIS_URL when set
    python benchmarks/cache.py --minilm --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import ROOT, command_line, machine, print_table, summary_ms, write_json

from majordome.cache import (
    CachedAnswer,
    CacheKey,
    InProcessCache,
    RedisCache,
    ResponseCache,
    guard_of,
    numbers_of,
    strict_guard_of,
)
from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder, StaticEmbedder
from majordome.models.messages import Usage

PAIRS = ROOT / "benchmarks" / "data" / "semantic_pairs.jsonl"
MAX_FALSE_HITS = 0.01
GRID = [round(0.50 + 0.005 * i, 3) for i in range(101)]
SHOWN = (0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
GUARDS = ("no guard", "number guard", "full guard", "content guard")
Pair = tuple[float, bool, bool, bool, bool]


def load_pairs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pairs, split in a tuning half and a held-out half, alternately per (language, label)."""
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    tune: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    seen: dict[tuple[str, bool], int] = {}
    for row in rows:
        group = (row["language"], row["same"])
        (tune if seen.get(group, 0) % 2 == 0 else held).append(row)
        seen[group] = seen.get(group, 0) + 1
    return tune, held


def scored(embedder: Embedder, rows: Sequence[dict[str, Any]]) -> list[Pair]:
    """(cosine, same meaning, numbers equal, full guard equal) per pair."""
    a = embedder.embed([r["a"] for r in rows])
    b = embedder.embed([r["b"] for r in rows])
    cosines = np.sum(a * b, axis=1)
    return [
        (
            float(c),
            bool(r["same"]),
            numbers_of(r["a"]) == numbers_of(r["b"]),
            guard_of(r["a"]) == guard_of(r["b"]),
            strict_guard_of(r["a"]) == strict_guard_of(r["b"]),
        )
        for c, r in zip(cosines.tolist(), rows, strict=True)
    ]


def rates(pairs: Sequence[Pair], threshold: float, guard: str) -> tuple[float, float]:
    """(true-hit rate, false-hit rate) at ``threshold``."""
    same = [p for p in pairs if p[1]]
    different = [p for p in pairs if not p[1]]

    def hit(p: Pair) -> bool:
        passes = {"no guard": True, "number guard": p[2], "full guard": p[3], "content guard": p[4]}[guard]
        return p[0] >= threshold and passes

    return sum(map(hit, same)) / max(1, len(same)), sum(map(hit, different)) / max(1, len(different))


def choose(pairs: Sequence[Pair], guard: str) -> float:
    for threshold in GRID:
        if rates(pairs, threshold, guard)[1] <= MAX_FALSE_HITS:
            return threshold
    return 1.0


def safety(name: str, embedder: Embedder) -> dict[str, Any]:
    tune_rows, held_rows = load_pairs()
    tune, held = scored(embedder, tune_rows), scored(embedder, held_rows)
    grid_rows = []
    for threshold in SHOWN:
        row: list[float] = [threshold]
        for guard in GUARDS:
            th, fh = rates(tune, threshold, guard)
            row += [th * 100, fh * 100]
        grid_rows.append(row)
    print_table(
        f"{name}: true / false hits (%) on the tuning half ({len(tune)} pairs) by threshold",
        ["threshold", *(f"{g}: {k}" for g in ("none", "numbers", "full", "content") for k in ("true", "false"))],
        grid_rows,
    )
    chosen: dict[str, Any] = {}
    rows = []
    for guard in GUARDS:
        threshold = choose(tune, guard)
        th, fh = rates(held, threshold, guard)
        chosen[guard] = {"threshold": threshold, "held_out_true_hits": th, "held_out_false_hits": fh}
        rows.append([guard, threshold, th * 100, fh * 100])
    print_table(
        f"{name}: threshold chosen on the tuning half (false hits <= 1 %), "
        f"measured on the held-out half ({len(held)} pairs)",
        ["", "threshold", "true hits %", "false hits %"],
        rows,
    )
    return {
        "embedder": embedder_name(embedder),
        "grid_tuning_half": grid_rows,
        "chosen": chosen,
        "pairs": {"tuning": len(tune), "held_out": len(held)},
    }


def embedder_name(embedder: Embedder) -> str:
    return str(getattr(embedder, "name", type(embedder).__name__))


# -- latency -----------------------------------------------------------------------------------


def entry(tenant: str, i: int) -> CachedAnswer:
    return CachedAnswer(
        f"answer {i} " * 20, "llama-3.3-70b", Usage(120, 60), f"trace-{i}", time.time(), "fan_reply", "en", tenant
    )


async def exact_latency(cache: ResponseCache, n: int) -> dict[str, float]:
    keys = [CacheKey("bench", "fan_reply", f"{i:064x}") for i in range(1000)]
    for i, key in enumerate(keys):
        await cache.put(key, entry("bench", i), 600)
    times = []
    for i in range(n):
        start = time.perf_counter()
        found = await cache.get(keys[i % len(keys)])
        times.append(time.perf_counter() - start)
        assert found is not None
    return summary_ms(times)


def sentences(count: int) -> list[str]:
    """``count`` distinct real sentences and clauses (SciFact abstracts, PIAF contexts, MMLU questions), the
    stand-in for a partition's cached prompts: real text, so that the vectors have the structure
    of real embeddings (random vectors have none, and no index could exploit it)."""
    from majordome.bench.readers import data_dir

    root = data_dir()
    found: dict[str, None] = {}
    for name in ("retrieval/scifact/corpus.jsonl", "retrieval/piaf/corpus.jsonl"):
        for line in (root / name).read_text().splitlines():
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc.get('text', '')}"
            for piece in re.split(r"[.;:!?]\s+|,\s+(?=\w{4})", text.replace("\n", " ")):
                piece = piece.strip()
                if 25 <= len(piece) <= 400:
                    found[piece] = None
    for name in ("retrieval/scifact/queries.jsonl", "retrieval/piaf/queries.jsonl", "zeroeval_gsm8k/prompts.jsonl"):
        for line in (root / name).read_text().splitlines():
            doc = json.loads(line)
            text = str(doc.get("text", doc.get("prompt", ""))).strip()
            if text:
                found[text[:400]] = None
    csvs = sorted((root / "routellm" / "mmlu" / "responses").glob("*.csv"))
    csvs += sorted((root / "routerbench").glob("*.csv"))
    for path in csvs:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                text = str(row.get("prompt", "")).strip()
                if text:
                    found[text[:400]] = None
    texts = list(found)
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} distinct sentences in the datasets, {count} asked")
    return texts[:count]


async def semantic_latency(cache: ResponseCache, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """p50/p99 of a lookup that hits (a stored message asked again) and of one that misses (a new
    message: the common case), at threshold 0.95, with every entry live in one partition."""
    tenant = "bench"
    answer = entry(tenant, 0)
    for i, vector in enumerate(vectors):
        await cache.put(CacheKey(tenant, "fan_reply", f"{i:064x}"), answer, 3600, embedding=vector, fingerprint=())
    # the first lookup brings a worker's mirror up to date (RedisCache); not what a request pays
    await cache.get_similar(tenant, "fan_reply", "en", vectors[0], 0.95, fingerprint=())
    out: dict[str, Any] = {}
    for what, pool, expect in (("hit", vectors, True), ("miss", queries, None)):
        times = []
        for i in range(300):
            query = pool[(i * 7919) % len(pool)]
            start = time.perf_counter()
            hit = await cache.get_similar(tenant, "fan_reply", "en", query, 0.95, fingerprint=())
            times.append(time.perf_counter() - start)
            if expect:
                assert hit is not None
        out[what] = summary_ms(times)
    return out


async def latency(redis_url: str | None, entries: int, embedder: Embedder) -> dict[str, Any]:
    texts = sentences(entries + 300)
    started = time.perf_counter()
    matrix = np.asarray(embedder.embed(texts), dtype=np.float32)
    print(f"embedded {len(texts)} sentences with {embedder_name(embedder)} in {time.perf_counter() - started:.1f} s")
    vectors, queries = matrix[:entries], matrix[entries:]
    out: dict[str, Any] = {"in_process": {}, "redis": {}, "entries": entries, "dim": int(matrix.shape[1])}
    out["in_process"]["exact_get"] = await exact_latency(InProcessCache(), 20_000)
    big = InProcessCache(max_entries=entries + 1)
    out["in_process"]["semantic_lookup"] = await semantic_latency(big, vectors, queries)
    times = []  # what a lookup cost before the projection: the full product over the partition
    for i in range(300):
        query = queries[i % len(queries)]
        start = time.perf_counter()
        scores = vectors @ query
        np.flatnonzero(scores >= 0.95)
        times.append(time.perf_counter() - start)
    out["in_process"]["full_product"] = summary_ms(times)
    if redis_url:
        prefix = f"majordome-bench:{uuid.uuid4().hex[:12]}:"
        cache = RedisCache(redis_url, prefix=prefix, timeout_s=5)
        try:
            out["redis"]["exact_get"] = await exact_latency(cache, 5_000)
            out["redis"]["semantic_lookup"] = await semantic_latency(cache, vectors, queries)
        finally:
            import redis.asyncio

            raw = redis.asyncio.Redis.from_url(redis_url)
            keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=5000)]
            for start in range(0, len(keys), 5000):
                await raw.delete(*keys[start : start + 5000])
            await raw.aclose()
            await cache.aclose()
    rows = []
    for where in ("in_process", "redis"):
        part = out[where]
        if "exact_get" in part:
            r = part["exact_get"]
            rows.append([f"{where} exact get", r["p50_ms"], r["p99_ms"], {"in_process": 0.3, "redis": 2.0}[where]])
        for what, r in part.get("semantic_lookup", {}).items():
            rows.append([f"{where} semantic lookup, {what}", r["p50_ms"], r["p99_ms"], 5.0])
        if "full_product" in part:
            r = part["full_product"]
            rows.append([f"{where} full product (unprojected)", r["p50_ms"], r["p99_ms"], "-"])
    print_table(
        f"cost of a lookup (semantic: {entries} real sentences of dim {matrix.shape[1]} in one partition)",
        ["lookup", "p50 ms", "p99 ms", "target p50 ms"],
        rows,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="also measure the MiniLM transformer")
    parser.add_argument("--redis", default=os.environ.get("MAJORDOME_TEST_REDIS_URL"), help="Redis URL (loopback)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the semantic partition")
    parser.add_argument("--no-latency", action="store_true", help="measure safety only")
    args = parser.parse_args()
    static = StaticEmbedder.for_model()
    results: dict[str, Any] = {"benchmark": "cache", "command": command_line(), "machine": machine()}
    results["safety"] = {"static": safety("StaticEmbedder", static)}
    if args.minilm:
        results["safety"]["minilm"] = safety("MiniLM (transformer)", SentenceTransformerEmbedder())
    if not args.no_latency:
        results["latency"] = asyncio.run(latency(args.redis, args.entries, static))
    write_json("cache", results)


if __name__ == "__main__":
    sys.exit(main())
