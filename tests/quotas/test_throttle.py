"""Bucket arithmetic of the in-process throttle on an injected clock, waiting to a deadline,
settling, headroom, the saturation curve, and concurrency."""

from __future__ import annotations

import asyncio
import math

import pytest

from majordome import MajordomeError
from majordome._errors import ConfigurationError
from majordome.quotas import (
    Acquired,
    DeploymentQuota,
    InProcessThrottle,
    QuotaExceedsCapacity,
    QuotaExhausted,
    Saturation,
    Wait,
)


class FakeClock:
    """A clock that moves only when told, or when a waiter sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def throttle(clock: FakeClock, **quota: int | None) -> InProcessThrottle:
    q = DeploymentQuota(rpm=quota.get("rpm"), tpm=quota.get("tpm"), slack_s=0)
    return InProcessThrottle({"dep": q}, window_s=60.0, clock=clock, sleep=clock.sleep)


async def test_burst_then_continuous_refill() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=None)  # capacity 10, refill 90 per 60 s = 1.5 / s
    for _ in range(10):
        assert isinstance(await t.try_acquire("dep", 0), Acquired)
    refused = await t.try_acquire("dep", 0)
    assert isinstance(refused, Wait)
    assert refused.seconds == pytest.approx(1 / 1.5)
    clock.now += 1 / 1.5 - 0.01
    assert isinstance(await t.try_acquire("dep", 0), Wait)
    clock.now += 0.02
    assert isinstance(await t.try_acquire("dep", 0), Acquired)
    # a long idle period refills to the capacity, never beyond it
    clock.now += 3600
    granted = [await t.try_acquire("dep", 0) for _ in range(12)]
    assert sum(isinstance(g, Acquired) for g in granted) == 10


async def test_no_window_admits_more_than_the_quota() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=None)
    admitted: list[float] = []
    while clock.now < 1000.0 + 300:
        result = await t.try_acquire("dep", 0)
        if isinstance(result, Acquired):
            admitted.append(clock.now)
        else:
            clock.now += 0.01
    for i, start in enumerate(admitted):
        in_window = sum(1 for a in admitted[i:] if a < start + 60.0)
        assert in_window <= 100
    # ... and it is not timid: a saturated deployment gets 90 % of its quota (burst 0.1)
    assert len(admitted) == pytest.approx(10 + 1.5 * 300, abs=2)


async def test_tokens_bucket_and_the_emptier_bucket_decides() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=1000, tpm=10_000)  # token capacity 1000, refill 150 / s
    assert isinstance(await t.try_acquire("dep", 800), Acquired)
    refused = await t.try_acquire("dep", 800)
    assert isinstance(refused, Wait)
    assert refused.seconds == pytest.approx((800 - 200) / 150)
    assert isinstance(await t.try_acquire("dep", 200), Acquired)  # what is left still fits


async def test_a_call_larger_than_the_bucket_is_refused_with_a_clear_error() -> None:
    t = throttle(FakeClock(), rpm=100, tpm=10_000)
    with pytest.raises(QuotaExceedsCapacity, match=r"2000 tokens can never be admitted.*at most 1000") as info:
        await t.try_acquire("dep", 2000)
    assert isinstance(info.value, QuotaExhausted) and isinstance(info.value, MajordomeError)
    assert info.value.retry_after_s == math.inf
    with pytest.raises(QuotaExceedsCapacity):
        await t.acquire("dep", 2000, deadline=1e9)  # waiting cannot help, so it does not wait


async def test_acquire_waits_up_to_the_deadline() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=None)
    for _ in range(10):
        await t.acquire("dep", 0, deadline=clock.now)
    granted = await t.acquire("dep", 0, deadline=clock.now + 5)
    assert granted == Acquired("dep", 0)
    assert 1 / 1.5 <= sum(clock.slept) <= 5


async def test_acquire_raises_quota_exhausted_with_the_retry_time() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=None)
    for _ in range(10):
        await t.acquire("dep", 0, deadline=clock.now)
    with pytest.raises(QuotaExhausted, match="'dep' is at its quota") as info:
        await t.acquire("dep", 0, deadline=clock.now + 0.5)
    assert info.value.retry_after_s == pytest.approx(1 / 1.5)
    assert info.value.deployment == "dep"
    assert clock.slept == []  # a wait that would pass the deadline is not started


async def test_adjust_settles_tokens_to_actual_usage() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=1000, tpm=10_000)
    grant = await t.try_acquire("dep", 1000)
    assert isinstance(grant, Acquired)
    assert isinstance(await t.try_acquire("dep", 600), Wait)
    await t.adjust("dep", 300 - grant.tokens)  # used 300 of the 1000 estimated
    assert isinstance(await t.try_acquire("dep", 600), Acquired)
    # an under-estimate puts the bucket in debt: the next call waits for it to be repaid
    await t.adjust("dep", 900)
    wait = await t.try_acquire("dep", 100)
    assert isinstance(wait, Wait)
    assert wait.seconds == pytest.approx((100 + 800) / 150)


async def test_headroom_is_the_emptier_bucket() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=10_000)
    assert await t.headroom("dep") == 1.0
    assert await t.headroom("unknown") == 1.0
    await t.try_acquire("dep", 250)  # requests 9/10 full, tokens 750/1000
    assert await t.headroom("dep") == pytest.approx(0.75)
    await t.adjust("dep", 5000)  # in debt: clamped to 0
    assert await t.headroom("dep") == 0.0
    clock.now += 3600
    assert await t.headroom("dep") == 1.0


async def test_deployments_without_a_quota_are_never_throttled() -> None:
    t = throttle(FakeClock(), rpm=100, tpm=None)
    results = [await t.try_acquire("other", 10**9) for _ in range(1000)]
    assert all(isinstance(r, Acquired) for r in results)


def test_saturation_curve() -> None:
    s = Saturation()
    assert s.multiplier(1.0) == s.multiplier(0.5) == 1.0
    assert s.multiplier(0.3) == pytest.approx(1 + 3 * (0.2 / 0.45) ** 2)
    assert s.multiplier(0.05 + 1e-9) == pytest.approx(4.0)
    assert s.multiplier(0.05) == math.inf and not s.available(0.05)
    assert s.available(0.06)
    values = [s.multiplier(h / 100) for h in range(6, 101)]
    assert values == sorted(values, reverse=True)  # more headroom never costs more


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="rpm"):
        DeploymentQuota(rpm=0, tpm=None)
    with pytest.raises(ConfigurationError, match="burst"):
        DeploymentQuota(rpm=10, tpm=None, burst=1.5)
    with pytest.raises(ConfigurationError, match="floor < knee"):
        Saturation(knee=0.1, floor=0.2)


async def test_many_tasks_never_exceed_the_quota() -> None:
    window = 1.0
    t = InProcessThrottle({"dep": DeploymentQuota(rpm=50, tpm=5000, slack_s=0)}, window_s=window)
    loop = asyncio.get_running_loop()
    admitted: list[float] = []

    async def worker() -> None:
        end = loop.time() + 2.5
        while True:
            try:
                await t.acquire("dep", 80, deadline=end)
            except QuotaExhausted:
                return
            admitted.append(loop.time())
            await t.adjust("dep", -30)  # used 50 of the 80 estimated

    await asyncio.gather(*(worker() for _ in range(64)))
    admitted.sort()
    for i, start in enumerate(admitted):
        assert sum(1 for a in admitted[i:] if a < start + window) <= 50
    # requests bind (tokens settle at 50 x 50 = 2500 < 5000): about 5 + 45 / s over 2.5 s
    assert len(admitted) >= 0.85 * (5 + 45 * 2.5)


async def test_room_says_when_a_call_would_fit_and_how_dear_the_deployment_counts() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100, tpm=100_000)  # buckets: 10 requests, 10,000 tokens; refill 1.5 and 1,500 a second
    room = await t.room("dep")
    assert room is not None and room.headroom == 1.0 and room.cost_multiplier == 1.0
    assert room.wait_s(5_000) == 0.0 and room.wait_s(20_000) == math.inf
    assert await t.try_acquire("dep", 8_000) == Acquired("dep", 8_000)
    room = await t.room("dep")  # the take itself updated this process's view: no stale read
    assert room is not None and room.tokens is not None and room.tokens[0] == pytest.approx(2_000)
    assert room.wait_s(5_000) == pytest.approx(2.0)
    assert 1.0 < room.cost_multiplier <= t.saturation.max_multiplier  # headroom 0.2: dearer, never infinite
    assert await t.room("unlimited") is None and await t.rooms(["dep", "unlimited"]) == {"dep": room}


async def test_room_reads_are_shared_for_a_moment() -> None:
    clock = FakeClock()
    t = throttle(clock, rpm=100)
    reads = 0
    run = t._run

    async def counting(op, specs):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += op == "peek"
        return await run(op, specs)

    t._run = counting  # type: ignore[method-assign]
    await t.rooms(["dep"] * 3)
    await t.room("dep")
    assert reads == 1
    clock.now += 2 * t.room_max_age_s
    await t.room("dep")
    assert reads == 2


def test_the_burst_is_smaller_by_the_slack_so_a_late_window_never_sees_more_than_the_quota() -> None:
    quota = DeploymentQuota(rpm=100, tpm=100_000)  # slack 0.5 s
    (req_cap, req_rate), (tok_cap, tok_rate) = quota.buckets(60.0)  # type: ignore[misc]
    assert tok_rate == pytest.approx(90_000 / 60) and tok_cap == pytest.approx(10_000 - 0.5 * tok_rate)
    assert tok_cap + tok_rate * (60.0 + quota.slack_s) == pytest.approx(100_000)
    assert req_cap + req_rate * (60.0 + quota.slack_s) == pytest.approx(100)
    # a window of seconds: the slack takes at most half the burst
    (_, _), (short_cap, _) = quota.buckets(1.0)  # type: ignore[misc]
    assert short_cap == pytest.approx(5_000)


async def test_waiters_are_served_in_the_order_they_came() -> None:
    t = InProcessThrottle({"dep": DeploymentQuota(rpm=20, tpm=None, slack_s=0)}, window_s=1.0)  # 2 at once, 18/s
    loop = asyncio.get_running_loop()
    for _ in range(2):
        await t.acquire("dep", 0, deadline=loop.time())
    served: list[tuple[int, float]] = []

    async def waiter(i: int) -> None:
        await t.acquire("dep", 0, deadline=loop.time() + 5)
        served.append((i, loop.time()))

    began = loop.time()
    await asyncio.gather(*(waiter(i) for i in range(5)))
    assert [i for i, _ in served] == [0, 1, 2, 3, 4]
    # each reserved its own turn at once: the fifth waited about 5/18 s, not five rounds of polling
    assert served[-1][1] - began == pytest.approx(5 / 18, abs=0.1)
    with pytest.raises(QuotaExhausted):  # the next place is further away than the deadline
        await t.acquire("dep", 0, deadline=loop.time() + 0.001)


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    t = InProcessThrottle({"dep": DeploymentQuota(rpm=100, tpm=None, slack_s=0)}, window_s=60.0)
    for _ in range(10):
        await t.acquire("dep", 0, deadline=0)
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(t.acquire("dep", 0, deadline=loop.time() + 30))
    await asyncio.sleep(0.01)
    assert (await t.room("dep")).requests[0] < -0.5  # type: ignore[union-attr]
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    t.room_max_age_s = 0
    assert (await t.room("dep")).requests[0] == pytest.approx(0.0, abs=0.1)  # type: ignore[union-attr]
