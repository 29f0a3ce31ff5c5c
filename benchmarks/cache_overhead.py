"""What a response-cache hit costs inside ``Majordome.ask``.

The same request is asked again and again of a Majordome whose cache holds its answer. Reported
per back end (in process; Redis on loopback when a URL is given): the whole ``ask`` of a hit,
and the cache's own part of it (the key, the exact ``get``, and with ``--semantic`` the lookup
of a similar request after an exact miss), timed around ``Majordome._cache_lookup``. The
targets (issue 8) are on the cache's part: p50 <= 0.3 ms in process, <= 2 ms with Redis. For
scale, the same request with the cache off (a scripted model that answers at once).

    python benchmarks/cache_overhead.py                      # Redis from MAJORDOME_TEST_REDIS_URL when set
    python benchmarks/cache_overhead.py -n 5000 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

from _common import command_line, machine, print_table, summary_ms, write_json

from majordome import Majordome, MajordomeConfig
from majordome.cache import InProcessCache, RedisCache, ResponseCache
from majordome.testing import Reply, ScriptedModel

TEXT = "Write a short caption for my beach sunset photo from Nice, 3 emojis max"


def request(text: str = TEXT) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "tenant": "bench", "intent": "caption_writing"}


async def measure(cache: ResponseCache | None, n: int, semantic: bool) -> dict[str, Any]:
    config = MajordomeConfig(semantic_cache_threshold=0.95 if semantic else None)
    mj = Majordome(config, providers={"*": ScriptedModel(default=Reply("Golden hour 🌅"))}, env={}, cache=cache)
    lookup_times: list[float] = []
    if cache is not None:
        lookup = mj._cache_lookup

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await lookup(*args, **kwargs)
            finally:
                lookup_times.append(time.perf_counter() - start)

        mj._cache_lookup = timed  # type: ignore[method-assign]
    first = await mj.ask(request())
    await asyncio.gather(*mj._cache_writes)
    # semantic: ask a paraphrase, so every timed lookup is an exact miss and a similar hit
    asked = request(TEXT + " please") if semantic else request()
    for _ in range(200):  # warm up
        await mj.ask(asked)
    lookup_times.clear()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        answer = await mj.ask(asked)
        times.append(time.perf_counter() - start)
        if cache is not None:
            assert answer.cached and answer.cached_trace_id == first.trace_id
    await mj.aclose()
    return {"ask": summary_ms(times), "cache_part": summary_ms(lookup_times) if lookup_times else None}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"cache off": await measure(None, args.n, False)}
    out["in process, exact hit"] = await measure(InProcessCache(), args.n, False)
    out["in process, similar hit"] = await measure(InProcessCache(), args.n, True)
    if args.redis:
        for semantic in (False, True):
            prefix = f"majordome-bench:{uuid.uuid4().hex[:12]}:"
            cache = RedisCache(args.redis, prefix=prefix)
            name = f"Redis, {'similar' if semantic else 'exact'} hit"
            try:
                out[name] = await measure(cache, args.n, semantic)
            finally:
                import redis.asyncio

                raw = redis.asyncio.Redis.from_url(args.redis)
                keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
                if keys:
                    await raw.delete(*keys)
                await raw.aclose()
                await cache.aclose()
    rows = []
    for name, r in out.items():
        part = r["cache_part"]
        target = "-" if part is None else 0.3 if name.startswith("in process") else 2.0
        rows.append(
            [
                name,
                r["ask"]["p50_ms"],
                r["ask"]["p99_ms"],
                "-" if part is None else part["p50_ms"],
                "-" if part is None else part["p99_ms"],
                target,
            ]
        )
    print_table(
        f"a cache hit inside Majordome.ask ({args.n} asks each)",
        ["", "ask p50 ms", "ask p99 ms", "cache part p50 ms", "cache part p99 ms", "target p50 ms (cache part)"],
        rows,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--redis", default=os.environ.get("MAJORDOME_TEST_REDIS_URL"))
    args = parser.parse_args()
    results = {"benchmark": "cache_overhead", "command": command_line(), "machine": machine()}
    results["results"] = asyncio.run(run(args))
    write_json("cache_overhead", results)


if __name__ == "__main__":
    sys.exit(main())
