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

Cost of a hit: exact ``get`` p50 in process (target ≤ 0.3 ms) and through Redis on loopback
(≤ 2 ms); semantic lookup p50 with 100k entries in one partition (≤ 5 ms), in process and (with
Redis) through ``RedisCache`` once its local mirror is up to date.

    python benchmarks/cache.py                       # Redis from MAJORDOME_TEST_REDIS_URL when set
    python benchmarks/cache.py --minilm --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import ROOT, command_line, machine, print_table, summary_ms, write_json

from majordome.cache import CachedAnswer, CacheKey, InProcessCache, RedisCache, ResponseCache, guard_of, numbers_of
from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder, StaticEmbedder
from majordome.models.messages import Usage

PAIRS = ROOT / "benchmarks" / "data" / "semantic_pairs.jsonl"
MAX_FALSE_HITS = 0.01
GRID = [round(0.70 + 0.005 * i, 3) for i in range(60)]
SHOWN = (0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
GUARDS = ("no guard", "number guard", "full guard")
Pair = tuple[float, bool, bool, bool]


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
        (float(c), bool(r["same"]), numbers_of(r["a"]) == numbers_of(r["b"]), guard_of(r["a"]) == guard_of(r["b"]))
        for c, r in zip(cosines.tolist(), rows, strict=True)
    ]


def rates(pairs: Sequence[Pair], threshold: float, guard: str) -> tuple[float, float]:
    """(true-hit rate, false-hit rate) at ``threshold``."""
    same = [p for p in pairs if p[1]]
    different = [p for p in pairs if not p[1]]

    def hit(p: Pair) -> bool:
        passes = {"no guard": True, "number guard": p[2], "full guard": p[3]}[guard]
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
        ["threshold", *(f"{g}: {k}" for g in ("none", "numbers", "full") for k in ("true", "false"))],
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


async def semantic_latency(cache: ResponseCache, entries: int, dim: int, n: int) -> dict[str, float]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((entries, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tenant = "bench"
    answer = entry(tenant, 0)
    for i in range(entries):
        await cache.put(CacheKey(tenant, "fan_reply", f"{i:064x}"), answer, 3600, embedding=vectors[i], fingerprint=())
    # the first lookup brings a worker's mirror up to date (RedisCache); not what a request pays
    await cache.get_similar(tenant, "fan_reply", "en", vectors[0], 0.95, fingerprint=())
    times = []
    for i in range(n):
        query = vectors[(i * 7919) % entries]
        start = time.perf_counter()
        hit = await cache.get_similar(tenant, "fan_reply", "en", query, 0.95, fingerprint=())
        times.append(time.perf_counter() - start)
        assert hit is not None
    return summary_ms(times)


async def latency(redis_url: str | None, entries: int, dim: int) -> dict[str, Any]:
    out: dict[str, Any] = {"in_process": {}, "redis": {}}
    out["in_process"]["exact_get"] = await exact_latency(InProcessCache(), 20_000)
    big = InProcessCache(max_entries=entries + 1)
    out["in_process"]["semantic_lookup"] = await semantic_latency(big, entries, dim, 300)
    if redis_url:
        prefix = f"majordome-bench:{uuid.uuid4().hex[:12]}:"
        cache = RedisCache(redis_url, prefix=prefix, timeout_s=5)
        try:
            out["redis"]["exact_get"] = await exact_latency(cache, 5_000)
            out["redis"]["semantic_lookup"] = await semantic_latency(cache, entries, dim, 300)
        finally:
            import redis.asyncio

            raw = redis.asyncio.Redis.from_url(redis_url)
            keys = [k async for k in raw.scan_iter(match=f"{prefix}*", count=5000)]
            for start in range(0, len(keys), 5000):
                await raw.delete(*keys[start : start + 5000])
            await raw.aclose()
            await cache.aclose()
    rows = [
        [f"{where} {what}", r["p50_ms"], r["p99_ms"], target]
        for where, part in out.items()
        for what, r in part.items()
        for target in [{"exact_get": {"in_process": 0.3, "redis": 2.0}[where], "semantic_lookup": 5.0}[what]]
    ]
    print_table(
        f"cost of a hit (semantic: {entries} entries of dim {dim} in one partition)",
        ["lookup", "p50 ms", "p99 ms", "target p50 ms"],
        rows,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="also measure the MiniLM transformer")
    parser.add_argument("--redis", default=os.environ.get("MAJORDOME_TEST_REDIS_URL"), help="Redis URL (loopback)")
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the semantic partition")
    args = parser.parse_args()
    static = StaticEmbedder.for_model()
    results: dict[str, Any] = {"benchmark": "cache", "command": command_line(), "machine": machine()}
    results["safety"] = {"static": safety("StaticEmbedder", static)}
    if args.minilm:
        results["safety"]["minilm"] = safety("MiniLM (transformer)", SentenceTransformerEmbedder())
    results["latency"] = asyncio.run(latency(args.redis, args.entries, static.dim))
    write_json("cache", results)


if __name__ == "__main__":
    sys.exit(main())
