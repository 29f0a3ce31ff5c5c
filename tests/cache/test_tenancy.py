"""No lookup ever returns another tenant's entry, whatever the keys, texts and vectors."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from majordome.cache import CachedAnswer, CacheKey, InProcessCache, RedisCache, ResponseCache
from majordome.models.messages import Usage

TENANTS = st.sampled_from(["t1", "t2", "t:3", "t{4}", "é"])
DIGESTS = st.sampled_from(["a" * 64, "b" * 64, "c" * 64])  # few digests: tenants collide on them
VECTORS = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=4, max_size=4).filter(
    lambda v: sum(x * x for x in v) > 1e-3
)
ENTRIES = st.lists(st.tuples(TENANTS, DIGESTS, VECTORS, st.text(max_size=8)), min_size=1, max_size=12)
LOOKUPS = st.lists(st.tuples(TENANTS, DIGESTS, VECTORS), min_size=1, max_size=8)


async def _check(
    cache: ResponseCache, entries: list[tuple[str, str, list[float], str]], lookups: list[tuple[str, str, list[float]]]
) -> None:
    for tenant, digest, vector, text in entries:
        answer = CachedAnswer(text, "m", Usage(), "tr", 0.0, "fan_reply", "en", tenant)
        await cache.put(CacheKey(tenant, "fan_reply", digest), answer, 60, embedding=np.array(vector))
    for tenant, digest, vector in lookups:
        exact = await cache.get(CacheKey(tenant, "fan_reply", digest))
        assert exact is None or exact.tenant == tenant
        similar = await cache.get_similar(tenant, "fan_reply", "en", np.array(vector), -1.0)
        assert similar is None or similar.answer.tenant == tenant
        # with threshold -1 every live entry of the tenant's partition qualifies
        assert (similar is not None) == any(e[0] == tenant for e in entries)


@settings(max_examples=150, deadline=None)
@given(entries=ENTRIES, lookups=LOOKUPS)
def test_in_process_never_crosses_tenants(
    entries: list[tuple[str, str, list[float], str]], lookups: list[tuple[str, str, list[float]]]
) -> None:
    asyncio.run(_check(InProcessCache(), entries, lookups))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, lookups=LOOKUPS)
def test_redis_never_crosses_tenants(
    redis_url: str,
    redis_prefix: str,
    entries: list[tuple[str, str, list[float], str]],
    lookups: list[tuple[str, str, list[float]]],
) -> None:
    async def go() -> None:  # a fresh prefix per example: hypothesis replays examples
        cache = RedisCache(redis_url, prefix=f"{redis_prefix}{uuid.uuid4().hex}:")
        try:
            await _check(cache, entries, lookups)
        finally:
            await cache.aclose()

    asyncio.run(go())
