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
