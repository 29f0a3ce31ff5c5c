"""Both back ends behind the one interface: exact and semantic lookups, TTL, corruption, tenants."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest

from majordome.cache import CachedAnswer, CacheKey, InProcessCache, RedisCache, ResponseCache, numbers_of
from majordome.models.messages import Usage
from majordome.testing import HashingEmbedder

EMBED = HashingEmbedder(dim=128)


def answer(tenant: str = "t1", text: str = "hello", intent: str = "fan_reply") -> CachedAnswer:
    return CachedAnswer(text, "deepseek-v3", Usage(10, 3), f"trace-{text}", 1000.0, intent, "en", tenant)


def key(tenant: str = "t1", digest: str = "a" * 64, intent: str = "fan_reply") -> CacheKey:
    return CacheKey(tenant, intent, digest)


def vec(text: str) -> np.ndarray:
    return EMBED.embed([text])[0]


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    if request.param == "memory":
        yield InProcessCache()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_cache = RedisCache(url, prefix=prefix)
    yield redis_cache
    await redis_cache.aclose()


async def test_exact_put_then_get(cache: ResponseCache) -> None:
    assert await cache.get(key()) is None
    await cache.put(key(), answer(), 60)
    assert await cache.get(key()) == answer()
    assert await cache.get(key(digest="b" * 64)) is None
    assert cache.stats.hits == 1 and cache.stats.misses == 2


async def test_zero_ttl_and_foreign_tenant_answers_are_not_stored(cache: ResponseCache) -> None:
    await cache.put(key(), answer(), 0)
    await cache.put(key(tenant="t1"), answer(tenant="t2"), 60)
    assert await cache.get(key()) is None


async def test_semantic_hit_above_threshold_only(cache: ResponseCache) -> None:
    prompt = "write a caption for my beach photo"
    await cache.put(key(), answer(), 60, embedding=vec(prompt), fingerprint=numbers_of(prompt))
    hit = await cache.get_similar("t1", "fan_reply", "en", vec("write a caption for my beach photo please"), 0.8)
    assert hit is not None and hit.answer == answer() and hit.key.digest == "a" * 64 and hit.score >= 0.8
    assert await cache.get_similar("t1", "fan_reply", "en", vec("tell me a joke about cats"), 0.8) is None
    # other partitions: language, intent, tenant
    assert await cache.get_similar("t1", "fan_reply", "fr", vec(prompt), 0.5) is None
    assert await cache.get_similar("t1", "translation", "en", vec(prompt), 0.5) is None
    assert await cache.get_similar("t2", "fan_reply", "en", vec(prompt), 0.5) is None


async def test_the_number_guard_refuses_different_prices(cache: ResponseCache) -> None:
    prompt = "announce a 20 euro discount on my shop"
    await cache.put(key(), answer(), 60, embedding=vec(prompt), fingerprint=numbers_of(prompt))
    other = "announce a 50 euro discount on my shop"
    assert await cache.get_similar("t1", "fan_reply", "en", vec(other), 0.7) is not None  # without the guard
    assert await cache.get_similar("t1", "fan_reply", "en", vec(other), 0.7, fingerprint=numbers_of(other)) is None
    same = await cache.get_similar("t1", "fan_reply", "en", vec(prompt), 0.7, fingerprint=numbers_of(prompt))
    assert same is not None


async def test_semantic_hit_needs_the_exact_entry_alive(cache: ResponseCache) -> None:
    await cache.put(key(), answer(), 0.2, embedding=vec("short lived"))
    await asyncio.sleep(0.3)
    assert await cache.get(key()) is None
    assert await cache.get_similar("t1", "fan_reply", "en", vec("short lived"), 0.5) is None


async def test_best_of_several_similar_entries_wins(cache: ResponseCache) -> None:
    await cache.put(key(digest="1" * 64), answer(text="one"), 60, embedding=vec("red green blue yellow"))
    await cache.put(key(digest="2" * 64), answer(text="two"), 60, embedding=vec("red green blue"))
    hit = await cache.get_similar("t1", "fan_reply", "en", vec("red green blue"), 0.5)
    assert hit is not None and hit.answer.text == "two"


async def test_in_process_lru_evicts_the_least_recently_used() -> None:
    cache = InProcessCache(max_entries=2)
    for name in "abc":
        await cache.put(key(digest=name * 64), answer(text=name), 60)
        if name == "b":
            assert await cache.get(key(digest="a" * 64)) is not None  # a is now more recent than b
    assert await cache.get(key(digest="b" * 64)) is None
    assert await cache.get(key(digest="a" * 64)) is not None and len(cache) == 2


async def test_in_process_ttl_follows_the_clock() -> None:
    now = [1000.0]
    cache = InProcessCache(clock=lambda: now[0])
    await cache.put(key(), answer(), 60, embedding=vec("hello there"))
    now[0] += 59
    assert await cache.get(key()) is not None
    now[0] += 2
    assert await cache.get(key()) is None
    assert await cache.get_similar("t1", "fan_reply", "en", vec("hello there"), 0.5) is None


async def test_in_process_corrupt_entry_is_dropped_and_counted() -> None:
    cache = InProcessCache()
    cache.put_raw(key(), '{"format": 1, "text": ', 60)
    assert await cache.get(key()) is None
    assert cache.stats.corrupt == 1 and len(cache) == 0


async def test_redis_corrupt_entry_is_dropped_and_counted(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio

    cache = RedisCache(redis_url, prefix=redis_prefix)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        entry = f"{redis_prefix}e:t1:{'a' * 64}"
        await raw.set(entry, b"\x00garbage", ex=60)
        assert await cache.get(key()) is None
        assert cache.stats.corrupt == 1
        assert await raw.exists(entry) == 0
        await raw.set(entry, answer(tenant="t2").to_json(), ex=60)  # planted under another tenant
        assert await cache.get(key()) is None and cache.stats.corrupt == 2
    finally:
        await raw.aclose()
        await cache.aclose()


async def test_redis_entries_expire_with_their_ttl(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio

    cache = RedisCache(redis_url, prefix=redis_prefix)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await cache.put(key(), answer(), 30, embedding=vec("x y z"))
        ttl = await raw.pttl(f"{redis_prefix}e:t1:{'a' * 64}")
        assert 29_000 < ttl <= 30_000
        assert 29_000 < await raw.pttl(f"{redis_prefix}s:t1:fan_reply:en:") <= 30_000
    finally:
        await raw.aclose()
        await cache.aclose()


async def test_redis_workers_see_each_others_semantic_entries(redis_url: str, redis_prefix: str) -> None:
    first, second = RedisCache(redis_url, prefix=redis_prefix), RedisCache(redis_url, prefix=redis_prefix)
    try:
        assert await second.get_similar("t1", "fan_reply", "en", vec("good morning fans"), 0.9) is None
        await first.put(key(), answer(), 60, embedding=vec("good morning fans"))
        hit = await second.get_similar("t1", "fan_reply", "en", vec("good morning fans"), 0.9)
        assert hit is not None and hit.answer == answer()
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_outage_is_a_miss_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="majordome.cache")
    cache = RedisCache("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens on port 1
    try:
        for _ in range(3):
            assert await cache.get(key()) is None
            await cache.put(key(), answer(), 60, embedding=vec("hi"))
            assert await cache.get_similar("t1", "fan_reply", "en", vec("hi"), 0.5) is None
        assert cache.stats.errors == 9
        assert caplog.text.count("cache.unavailable") == 1
    finally:
        await cache.aclose()
