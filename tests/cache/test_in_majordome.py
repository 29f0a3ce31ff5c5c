"""The response cache and the rate limits inside a Majordome."""

from __future__ import annotations

import asyncio

import pytest

from majordome import Completed, Majordome, MajordomeConfig, TextDelta
from majordome.cache import InProcessCache
from majordome.quotas import InProcessRateLimiter, RateLimited, RateLimits
from majordome.testing import Reply, ScriptedModel


def caption(tenant: str = "creator_1", text: str = "Write a caption for my beach photo") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "tenant": tenant, "intent": "caption_writing"}


async def test_a_repeated_request_is_served_from_the_cache_for_its_tenant_only() -> None:
    model = ScriptedModel(default=Reply("Sun, sand and me."))
    mj = Majordome(MajordomeConfig(), providers={"*": model}, env={}, cache=InProcessCache())
    first = await mj.ask(caption())
    await asyncio.sleep(0)  # the cache write runs off the request path
    await asyncio.gather(*mj._cache_writes)
    again = await mj.ask(caption())
    assert not first.cached and again.cached and again.text == first.text
    assert again.cost_usd == 0.0 and again.cached_trace_id == first.trace_id and again.cache_age_s is not None
    assert again.trace_id != first.trace_id and "cache" in again.decision.reason
    other = await mj.ask(caption(tenant="creator_2"))
    assert not other.cached  # never across tenants
    calls = len(model.calls)
    events = [e async for e in mj.stream(caption())]
    assert isinstance(events[0], TextDelta) and isinstance(events[-1], Completed) and events[-1].answer.cached
    assert len(model.calls) == calls
    await mj.aclose()


async def test_uncacheable_intents_always_call_the_model() -> None:
    model = ScriptedModel(default=Reply("42"))
    mj = Majordome(MajordomeConfig(), providers={"*": model}, env={}, cache=InProcessCache())
    request = {"messages": [{"role": "user", "content": "What is 6 x 7?"}], "tenant": "t", "intent": "reasoning"}
    for _ in range(3):
        assert not (await mj.ask(request)).cached
    assert len(model.calls) == 3
    await mj.aclose()


async def test_rate_limits_answer_with_a_typed_error_and_the_retry_time() -> None:
    limiter = InProcessRateLimiter(RateLimits(per_user_per_minute=2))
    mj = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(default=Reply("hi"))}, env={}, rate_limiter=limiter)
    request = {"messages": [{"role": "user", "content": "hello"}], "tenant": "t", "user": "fan_1"}
    await mj.ask(request)
    await mj.ask(request)
    with pytest.raises(RateLimited) as caught:
        await mj.ask(request)
    assert caught.value.retry_after_s > 0 and caught.value.scope == "user"
    await mj.ask({**request, "user": "fan_2"})  # another user has their own allowance
    await mj.aclose()


def test_the_configuration_builds_the_cache_and_the_limits() -> None:
    config = MajordomeConfig(response_cache="memory", rate_limit_per_user_per_minute=30)
    mj = Majordome(config, providers={"*": ScriptedModel(default=Reply("hi"))}, env={})
    assert isinstance(mj.cache, InProcessCache) and isinstance(mj.rate_limiter, InProcessRateLimiter)
    mj.close()


async def written(mj: Majordome) -> None:
    await asyncio.sleep(0)
    await asyncio.gather(*mj._cache_writes)


def with_system(text: str, system: str) -> dict[str, object]:
    return {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
        "tenant": "creator_1",
        "intent": "caption_writing",
    }


async def test_a_similar_request_is_served_only_when_semantic_lookup_is_on_and_the_guard_agrees() -> None:
    text = "Write a short caption for my beach sunset photo from Nice, 3 emojis max"
    paraphrase = "Write a short caption for my beach sunset photo from Nice, 3 emojis max please"
    model = ScriptedModel(default=Reply("Golden hour in Nice 🌅"))
    off = Majordome(MajordomeConfig(), providers={"*": model}, env={}, cache=InProcessCache())
    await off.ask(caption(text=text))
    await written(off)
    assert not (await off.ask(caption(text=paraphrase))).cached  # exact matches only by default
    await off.aclose()

    config = MajordomeConfig(semantic_cache_threshold=0.9)
    mj = Majordome(config, providers={"*": model}, env={}, cache=InProcessCache())
    first = await mj.ask(caption(text=text))
    await written(mj)
    similar = await mj.ask(caption(text=paraphrase))
    assert similar.cached and similar.cached_trace_id == first.trace_id and similar.text == first.text
    assert similar.cache_similarity is not None and similar.cache_similarity >= 0.9
    assert "a similar request" in similar.decision.reason
    # the guard: another number, another name; the partition: another tenant, another context
    assert not (await mj.ask(caption(text=text.replace("3 emojis", "5 emojis")))).cached
    assert not (await mj.ask(caption(text=paraphrase.replace("Nice", "Lyon")))).cached
    assert not (await mj.ask(caption(tenant="creator_2", text=paraphrase))).cached
    assert not (await mj.ask(with_system(paraphrase, "Answer in French."))).cached
    await mj.aclose()


async def test_personal_intents_are_never_answered_by_a_similar_request() -> None:
    model = ScriptedModel(default=Reply("Hi Sam, 20 % off today"))
    mj = Majordome(
        MajordomeConfig(semantic_cache_threshold=0.5), providers={"*": model}, env={}, cache=InProcessCache()
    )
    base = {"tenant": "creator_1", "intent": "sales_message", "user": "fan_1"}
    await mj.ask({**base, "messages": [{"role": "user", "content": "Write a promo message for my bundle"}]})
    await written(mj)
    again = await mj.ask({**base, "messages": [{"role": "user", "content": "Write a promo message for my bundle!"}]})
    assert not again.cached
    await mj.aclose()


async def test_workers_share_exact_and_similar_answers_through_redis(redis_url: str, redis_prefix: str) -> None:
    from majordome.cache import RedisCache

    text = "Write a short caption for my beach sunset photo from Nice, 3 emojis max"
    model = ScriptedModel(default=Reply("Golden hour in Nice 🌅"))
    config = MajordomeConfig(semantic_cache_threshold=0.9)
    one = Majordome(config, providers={"*": model}, env={}, cache=RedisCache(redis_url, prefix=redis_prefix))
    two = Majordome(config, providers={"*": model}, env={}, cache=RedisCache(redis_url, prefix=redis_prefix))
    first = await one.ask(caption(text=text))
    await written(one)
    exact = await two.ask(caption(text=text))
    similar = await two.ask(caption(text=text + " please"))
    assert exact.cached and exact.cache_similarity is None and exact.cached_trace_id == first.trace_id
    assert similar.cached and similar.cache_similarity is not None
    assert not (await two.ask(caption(tenant="creator_2", text=text))).cached
    assert len(model.calls) == 2
    for mj in (one, two):
        await mj.cache.aclose()  # type: ignore[union-attr]
        await mj.aclose()
