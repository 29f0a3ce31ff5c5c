"""Per-user and per-tenant rate limits, in process (injected clock) and shared through Redis."""

from __future__ import annotations

import pytest

from majordome import MajordomeError
from majordome._errors import ConfigurationError
from majordome.quotas import InProcessRateLimiter, RateLimited, RateLimits, RedisRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_per_user_limit_is_a_bucket_per_user_of_each_tenant() -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(RateLimits(per_user_per_minute=3), clock=clock)
    for _ in range(3):
        await limiter.check("acme", "alice")
    with pytest.raises(RateLimited, match=r"user 'alice' of tenant 'acme'.*3 requests per 60 s") as info:
        await limiter.check("acme", "alice")
    assert isinstance(info.value, MajordomeError)
    assert info.value.scope == "user" and info.value.user == "alice" and info.value.tenant == "acme"
    assert info.value.retry_after_s == pytest.approx(20.0)  # refills 3 per minute
    await limiter.check("acme", "bob")  # another user
    await limiter.check("globex", "alice")  # the same name in another tenant
    clock.now += 20.0
    await limiter.check("acme", "alice")
    with pytest.raises(RateLimited):
        await limiter.check("acme", "alice")


async def test_tenant_limit_counts_every_user_and_a_refusal_spends_nothing() -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(RateLimits(per_user_per_minute=2, per_tenant_per_minute=4), clock=clock)
    for user in ("a", "a", "b", "b"):
        await limiter.check("acme", user)
    with pytest.raises(RateLimited, match="tenant 'acme' is over its limit of 4") as info:
        await limiter.check("acme", "c")
    assert info.value.scope == "tenant"
    assert info.value.retry_after_s == pytest.approx(15.0)
    clock.now += 15.0
    await limiter.check("acme", "c")  # c's refused request did not spend c's bucket
    await limiter.check("other", None)  # no tenant limit hit elsewhere; no user: tenant limit only


async def test_no_limits_means_no_checks() -> None:
    limiter = InProcessRateLimiter(RateLimits(per_user_per_minute=None))
    for _ in range(1000):
        await limiter.check("acme", "alice")


def test_limits_are_checked_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="per_user_per_minute"):
        RateLimits(per_user_per_minute=0)
    with pytest.raises(ConfigurationError, match="window_s"):
        RateLimits(window_s=0)


async def test_redis_limits_are_shared_between_limiters(redis_url: str, redis_prefix: str) -> None:
    limits = RateLimits(per_user_per_minute=5, per_tenant_per_minute=8)
    first = RedisRateLimiter(limits, url=redis_url, prefix=redis_prefix)
    second = RedisRateLimiter(limits, url=redis_url, prefix=redis_prefix)
    try:
        for i in range(5):
            await (first if i % 2 else second).check("acme", "alice")
        with pytest.raises(RateLimited) as info:
            await first.check("acme", "alice")
        assert info.value.scope == "user"
        assert 0 < info.value.retry_after_s <= 12.0
        for _ in range(3):
            await second.check("acme", "bob")
        with pytest.raises(RateLimited) as info:
            await first.check("acme", "carol")
        assert info.value.scope == "tenant"
        assert not first.degraded
    finally:
        await first.aclose()
        await second.aclose()
