"""The Redis throttle: shared buckets, four processes against one quota, and the outage path."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time

import pytest

from majordome.quotas import (
    Acquired,
    DeploymentQuota,
    InProcessRateLimiter,
    QuotaExhausted,
    RateLimited,
    RateLimits,
    RedisRateLimiter,
    RedisThrottle,
    Wait,
)


async def test_buckets_are_shared_and_settled(redis_url: str, redis_prefix: str) -> None:
    quotas = {"dep": DeploymentQuota(rpm=100, tpm=10_000, slack_s=0)}
    a = RedisThrottle(quotas, url=redis_url, prefix=redis_prefix)
    b = RedisThrottle(quotas, url=redis_url, prefix=redis_prefix)
    try:
        assert await a.headroom("dep") == 1.0
        grant = await a.try_acquire("dep", 900)
        assert grant == Acquired("dep", 900)
        assert await b.headroom("dep") == pytest.approx(0.1, abs=0.01)
        wait = await b.try_acquire("dep", 500)
        assert isinstance(wait, Wait)
        assert wait.seconds == pytest.approx((500 - 100) / 150, abs=0.05)
        await a.adjust("dep", 400 - grant.tokens)
        assert isinstance(await b.try_acquire("dep", 500), Acquired)
        with pytest.raises(QuotaExhausted) as info:
            await b.acquire("dep", 900, deadline=time.monotonic() + 0.1)
        assert info.value.retry_after_s > 0.1
        assert not a.degraded and not b.degraded
    finally:
        await a.aclose()
        await b.aclose()


_WORKER = """
import asyncio, json, sys, time
from majordome.quotas import DeploymentQuota, QuotaExhausted, RedisThrottle

async def main(url, prefix, start, seconds):
    quota = DeploymentQuota(rpm=20, tpm=10_000, slack_s=0)
    throttle = RedisThrottle({"dep": quota}, url=url, prefix=prefix, window_s=2.0)
    admitted = []
    while time.time() < start:
        await asyncio.sleep(0.005)
    end = time.monotonic() + seconds

    async def task():
        while True:
            try:
                await throttle.acquire("dep", 50, deadline=end)
            except QuotaExhausted:
                return
            admitted.append(time.time())

    await asyncio.gather(*(task() for _ in range(8)))
    await throttle.aclose()
    print(json.dumps(admitted))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
"""


async def test_four_processes_never_exceed_the_quota(redis_url: str, redis_prefix: str) -> None:
    start, seconds, window, quota = time.time() + 3.0, 5.0, 2.0, 20
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            redis_url,
            redis_prefix,
            repr(start),
            repr(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    per_process = [json.loads(out) for out, _ in outputs]
    admitted = sorted(t for times in per_process for t in times)
    assert all(per_process), "every process got some requests through"
    # Times are taken after the script answered; shrinking the window by a generous 0.1 s of
    # loopback latency makes the check exact in Redis's time.
    for i, first in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < first + window - 0.1) <= quota
    # capacity 2 at once, then 18 per 2 s: about 2 + 9 * 5 = 47 over the run
    assert 0.85 * 47 <= len(admitted) <= 47 + 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_outage_degrades_to_in_process_limits_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="majordome.quotas")
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    throttle = RedisThrottle({"dep": DeploymentQuota(rpm=100, tpm=None, slack_s=0)}, url=url, redis_retry_s=0.0)
    limiter = RedisRateLimiter(RateLimits(per_user_per_minute=3), url=url, redis_retry_s=0.0)
    try:
        results = [await throttle.try_acquire("dep", 0) for _ in range(12)]
        assert [isinstance(r, Acquired) for r in results] == [True] * 10 + [False] * 2  # still throttled
        assert throttle.degraded
        assert await throttle.headroom("dep") < 0.05
        for _ in range(3):
            await limiter.check("acme", "alice")
        with pytest.raises(RateLimited):
            await limiter.check("acme", "alice")
    finally:
        await throttle.aclose()
        await limiter.aclose()
    warnings = [r for r in caplog.records if "quotas.redis_unavailable" in r.getMessage()]
    assert len(warnings) == 2  # one per component, not one per call (every call retried Redis)


async def test_recovery_after_an_outage_returns_to_redis(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="majordome.quotas")
    throttle = RedisThrottle({"dep": DeploymentQuota(rpm=100, tpm=None, slack_s=0)}, url=redis_url, prefix=redis_prefix)
    clock = [0.0]
    buckets = throttle._buckets
    buckets._clock = lambda: clock[0]
    buckets._down_until = 5.0  # as if an outage had begun; Redis is not tried before then
    try:
        await throttle.try_acquire("dep", 0)
        assert throttle.degraded
        clock[0] = 6.0
        await throttle.try_acquire("dep", 0)
        assert not throttle.degraded
        assert "quotas.redis_recovered" in caplog.text
        assert await throttle.headroom("dep") == pytest.approx(0.9, abs=0.01)  # only the Redis take counted
    finally:
        await throttle.aclose()


async def test_in_process_limiter_matches_redis_limiter(redis_url: str, redis_prefix: str) -> None:
    limits = RateLimits(per_user_per_minute=4, per_tenant_per_minute=6)
    local = InProcessRateLimiter(limits)
    shared = RedisRateLimiter(limits, url=redis_url, prefix=redis_prefix)
    try:
        outcomes = []
        for limiter in (local, shared):
            seen = []
            for user in ["a"] * 5 + ["b"] * 3:
                try:
                    await limiter.check("t", user)
                    seen.append("ok")
                except RateLimited as error:
                    seen.append(error.scope)
            outcomes.append(seen)
        assert outcomes[0] == outcomes[1] == ["ok"] * 4 + ["user", "ok", "ok", "tenant"]
    finally:
        await shared.aclose()
