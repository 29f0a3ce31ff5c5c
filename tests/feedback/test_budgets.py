"""Budgets: the same behaviour from the in-process ledger and the Redis one (a real server, see
``scripts/services.sh``), windows on UTC days and months, expiry of abandoned reservations,
idempotent settles, and no overspend under concurrency, within a process and across processes."""

from __future__ import annotations

import asyncio
import calendar
import multiprocessing
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from majordome import BadRequestError, BudgetExceeded, ConfigurationError
from majordome.feedback.budgets import (
    LATE_SETTLE_S,
    BudgetCaps,
    BudgetLedger,
    BudgetStatus,
    BudgetUnavailable,
    InProcessBudgets,
    RedisBudgets,
    Reservation,
)

TENANT = "creator_42"


def utc(text: str) -> float:
    """Seconds since the epoch of ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: str = "2026-03-14 12:00:00") -> None:
        self.now = utc(start)

    def __call__(self) -> float:
        return self.now

    def set(self, text: str) -> None:
        self.now = utc(text)

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeLedger = Callable[..., BudgetLedger]


@pytest.fixture(params=["in-process", "redis"])
async def make_ledger(request: pytest.FixtureRequest) -> AsyncIterator[MakeLedger]:
    """Builds ledgers of one back end (Redis: under a key prefix of this test's own); closes them after."""
    made: list[BudgetLedger] = []
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        def make(**kwargs: Any) -> BudgetLedger:
            ledger = RedisBudgets(url, prefix=prefix, **kwargs)
            made.append(ledger)
            return ledger
    else:

        def make(**kwargs: Any) -> BudgetLedger:
            ledger = InProcessBudgets(**kwargs)
            made.append(ledger)
            return ledger

    yield make
    for ledger in made:
        await ledger.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- reserve, settle, release ------------------------------------------------------------------


async def test_a_reservation_is_held_then_replaced_by_the_actual_cost(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(caps={TENANT: BudgetCaps(daily_usd=1.0, monthly_usd=10.0)}, clock=clock)
    reservation = await ledger.reserve(TENANT, 0.25)
    assert (reservation.tenant, reservation.amount_usd, reservation.day, reservation.month) == (
        TENANT,
        0.25,
        "2026-03-14",
        "2026-03",
    )
    assert reservation.expires_at == clock.now + 600
    held = await ledger.status(TENANT)
    assert (held.daily_spent, held.daily_reserved, held.monthly_spent, held.monthly_reserved) == (0, 0.25, 0, 0.25)
    assert held.remaining_usd == 0.75

    await ledger.settle(reservation, 0.1)
    settled = await ledger.status(TENANT)
    assert (settled.daily_spent, settled.daily_reserved, settled.monthly_spent, settled.monthly_reserved) == (
        0.1,
        0,
        0.1,
        0,
    )
    assert settled.remaining_usd == pytest.approx(0.9)
    assert settled.remaining_share == pytest.approx(0.9)


async def test_a_request_passing_a_cap_is_refused_and_holds_nothing(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(caps={TENANT: BudgetCaps(daily_usd=1.0)}, clock=clock)
    first = await ledger.reserve(TENANT, 0.6)
    await ledger.settle(first, 0.5)
    await ledger.reserve(TENANT, 0.3)  # held: 0.5 spent + 0.3 reserved

    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(TENANT, 0.2 + 1e-6)
    assert refused.value.tenant == TENANT
    assert refused.value.remaining_usd == pytest.approx(0.2)
    assert "daily cap" in str(refused.value) and TENANT in str(refused.value)
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved) == (0.5, pytest.approx(0.3))

    await ledger.reserve(TENANT, 0.2)  # exactly up to the cap is allowed
    assert (await ledger.status(TENANT)).remaining_usd == 0


async def test_the_monthly_cap_refuses_what_the_daily_cap_allows(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=5.0, monthly_usd=6.0), clock=clock)
    await ledger.settle(await ledger.reserve(TENANT, 4.0), 4.0)
    clock.advance(86_400)
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(TENANT, 2.5)
    assert "monthly cap" in str(refused.value) and "daily cap" not in str(refused.value)
    assert refused.value.remaining_usd == pytest.approx(2.0)
    await ledger.reserve(TENANT, 2.0)


async def test_an_actual_cost_above_the_estimate_is_recorded(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0), clock=clock)
    await ledger.settle(await ledger.reserve(TENANT, 0.1), 1.4)
    status = await ledger.status(TENANT)
    assert status.daily_spent == 1.4
    assert status.remaining_usd == 0 and status.remaining_share == 0
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 0.01)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 0)  # over the cap, even a free call is refused: spent + 0 > cap


async def test_settle_and_release_count_once(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0), clock=clock)
    settled = await ledger.reserve(TENANT, 0.3)
    await ledger.settle(settled, 0.2)
    await ledger.settle(settled, 0.2)
    await ledger.settle(settled, 0.7)
    await ledger.release(settled)
    released = await ledger.reserve(TENANT, 0.4)
    await ledger.release(released)
    await ledger.release(released)
    await ledger.settle(released, 0.4)
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved, status.monthly_spent, status.monthly_reserved) == (
        0.2,
        0,
        0.2,
        0,
    )


async def test_tenants_do_not_share_windows(make_ledger: MakeLedger, clock: Clock) -> None:
    odd = "creator:{7}/é ü"  # key separators, a hash tag and non-ASCII in the id
    ledger = make_ledger(caps={odd: BudgetCaps(daily_usd=0.5)}, default=BudgetCaps(daily_usd=1.0), clock=clock)
    await ledger.settle(await ledger.reserve(odd, 0.5), 0.5)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(odd, 0.01)
    await ledger.settle(await ledger.reserve("creator", 1.0), 1.0)
    assert (await ledger.status(odd)).daily_spent == 0.5
    assert (await ledger.status("creator")).daily_spent == 1.0
    assert (await ledger.status("someone else")).daily_spent == 0


async def test_an_uncapped_tenant_is_never_refused_and_its_spend_is_recorded(
    make_ledger: MakeLedger, clock: Clock
) -> None:
    ledger = make_ledger(caps={"capped": BudgetCaps(daily_usd=0.0)}, clock=clock)
    await ledger.settle(await ledger.reserve(TENANT, 1e6), 123.456789)
    status = await ledger.status(TENANT)
    assert (status.daily_cap, status.monthly_cap, status.daily_spent) == (None, None, 123.456789)
    assert status.remaining_usd is None and status.remaining_share is None
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve("capped", 1e-9)
    assert refused.value.remaining_usd == 0


async def test_large_amounts_stay_exact(make_ledger: MakeLedger, clock: Clock) -> None:
    """Sums in nano-dollars beyond 1e14, where Lua would print an integer in exponent notation."""
    ledger = make_ledger(default=BudgetCaps(monthly_usd=3_000_000.0), clock=clock)
    first = await ledger.reserve(TENANT, 1_000_000.25)
    await ledger.reserve(TENANT, 1_999_999.75)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 1e-9)
    await ledger.settle(first, 999_999.5)
    status = await ledger.status(TENANT)
    assert (status.monthly_spent, status.monthly_reserved) == (999_999.5, 1_999_999.75)
    await ledger.reserve(TENANT, 0.75)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 1e-9)


# -- windows -------------------------------------------------------------------------------------


async def test_the_day_rolls_over_at_utc_midnight(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0, monthly_usd=5.0), clock=clock)
    clock.set("2026-03-14 23:59:59")
    await ledger.settle(await ledger.reserve(TENANT, 1.0), 1.0)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 0.01)
    clock.set("2026-03-15 00:00:00")
    reservation = await ledger.reserve(TENANT, 1.0)
    assert reservation.day == "2026-03-15"
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved, status.monthly_spent, status.monthly_reserved) == (
        0,
        1.0,
        1.0,
        1.0,
    )


async def test_the_month_rolls_over_on_the_first_at_utc_midnight(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(monthly_usd=2.0), clock=clock)
    clock.set("2026-01-01 00:00:00")
    await ledger.settle(await ledger.reserve(TENANT, 1.5), 1.5)
    clock.set("2026-01-31 23:59:59")
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 0.6)
    await ledger.settle(await ledger.reserve(TENANT, 0.5), 0.5)
    clock.set("2026-02-01 00:00:00")
    status = await ledger.status(TENANT)
    assert (status.monthly_spent, status.remaining_usd) == (0, 2.0)
    assert (await ledger.reserve(TENANT, 2.0)).month == "2026-02"


async def test_a_reservation_settles_into_the_windows_it_was_made_in(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0), clock=clock)
    clock.set("2026-03-31 23:59:30")
    reservation = await ledger.reserve(TENANT, 0.5)
    clock.set("2026-04-01 00:00:30")
    await ledger.settle(reservation, 0.4)
    assert ((await ledger.status(TENANT)).daily_spent, (await ledger.status(TENANT)).monthly_spent) == (0, 0)
    clock.set("2026-03-31 23:59:59")  # the clock of a worker that has not crossed midnight yet
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved, status.monthly_spent) == (0.4, 0, 0.4)


# -- abandoned reservations ------------------------------------------------------------------------


async def test_an_abandoned_reservation_expires_and_a_late_settle_still_counts(
    make_ledger: MakeLedger, clock: Clock
) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0), reservation_ttl_s=30, clock=clock)
    abandoned = await ledger.reserve(TENANT, 0.8)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(TENANT, 0.3)
    clock.advance(29.9)
    assert (await ledger.status(TENANT)).daily_reserved == 0.8
    clock.advance(0.1)  # expires_at reached
    assert (await ledger.status(TENANT)).daily_reserved == 0
    fresh = await ledger.reserve(TENANT, 0.3)

    await ledger.settle(abandoned, 0.5)  # the worker was only slow: its spend is recorded
    await ledger.settle(abandoned, 0.5)
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved) == (0.5, 0.3)
    await ledger.settle(fresh, 0.3)
    assert (await ledger.status(TENANT)).daily_spent == 0.8


async def test_an_expired_reservation_is_forgotten_after_a_day(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(monthly_usd=1.0), reservation_ttl_s=30, clock=clock)
    abandoned = await ledger.reserve(TENANT, 0.8)
    clock.advance(31)
    await ledger.status(TENANT)  # returns the amount
    clock.advance(LATE_SETTLE_S)
    await ledger.status(TENANT)  # forgets the reservation
    await ledger.settle(abandoned, 0.8)
    assert (await ledger.status(TENANT)).monthly_spent == 0


async def test_expiry_runs_inside_reserve(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0), reservation_ttl_s=10, clock=clock)
    for _ in range(5):
        await ledger.reserve(TENANT, 1.0)  # each abandoned; the next reserve returns it first
        clock.advance(10)
    assert (await ledger.status(TENANT)).daily_reserved == 0


# -- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_reservations_never_pass_the_cap(make_ledger: MakeLedger, clock: Clock) -> None:
    ledger = make_ledger(default=BudgetCaps(daily_usd=1.0, monthly_usd=100.0), clock=clock)
    amounts = [random.Random(7).choice((0.01, 0.02, 0.05, 0.07)) for _ in range(300)]

    async def one(amount: float) -> Reservation | None:
        try:
            return await ledger.reserve(TENANT, amount)
        except BudgetExceeded:
            return None

    held = [r for r in await asyncio.gather(*(one(a) for a in amounts)) if r is not None]
    total = round(sum(r.amount_usd for r in held), 9)
    assert total <= 1.0
    assert total > 1.0 - 0.07  # every refusal saw a cap nearly used up
    assert (await ledger.status(TENANT)).daily_reserved == pytest.approx(total, abs=1e-9)
    await asyncio.gather(*(ledger.settle(r, r.amount_usd) for r in held))
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved) == (pytest.approx(total, abs=1e-9), 0)


def test_in_process_budgets_are_thread_safe() -> None:
    ledger = InProcessBudgets(default=BudgetCaps(daily_usd=10.0))
    accepted: list[int] = []

    def worker() -> None:
        async def run() -> int:
            count = 0
            for _ in range(200):
                try:
                    reservation = await ledger.reserve(TENANT, 0.01)
                except BudgetExceeded:
                    continue
                await ledger.settle(reservation, 0.01)
                count += 1
            return count

        accepted.append(asyncio.run(run()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 1000  # 1,600 tried, exactly 10.00 USD worth let through
    status = asyncio.run(ledger.status(TENANT))
    assert (status.daily_spent, status.daily_reserved) == (10.0, 0)


# -- configuration and input -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf"), "5", True])
def test_caps_must_be_finite_and_not_negative(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="daily_usd"):
        BudgetCaps(daily_usd=bad)
    with pytest.raises(ConfigurationError, match="monthly_usd"):
        BudgetCaps(monthly_usd=bad)


def test_ledger_arguments_are_checked_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="BudgetCaps"):
        InProcessBudgets(caps={TENANT: {"daily_usd": 1.0}})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="tenant"):
        InProcessBudgets(caps={"": BudgetCaps()})
    with pytest.raises(ConfigurationError, match="reservation_ttl_s"):
        InProcessBudgets(reservation_ttl_s=0)
    with pytest.raises(ConfigurationError, match="default"):
        InProcessBudgets(default=1.0)  # type: ignore[arg-type]


def test_caps_for_gives_the_tenant_its_own_caps_or_the_default() -> None:
    ledger = InProcessBudgets(caps={TENANT: BudgetCaps(daily_usd=2.0)}, default=BudgetCaps(monthly_usd=9.0))
    assert ledger.caps_for(TENANT) == BudgetCaps(daily_usd=2.0)
    assert ledger.caps_for("other") == BudgetCaps(monthly_usd=9.0)
    assert InProcessBudgets().caps_for("other") == BudgetCaps()


async def test_bad_tenants_amounts_and_reservations_are_bad_requests(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    for tenant in ("", "   ", None, 42):
        with pytest.raises(BadRequestError, match="tenant"):
            await ledger.reserve(tenant, 0.1)  # type: ignore[arg-type]
    for amount in (-1.0, float("nan"), float("inf"), "0.1", None):
        with pytest.raises(BadRequestError, match="amount_usd"):
            await ledger.reserve(TENANT, amount)  # type: ignore[arg-type]
    reservation = await ledger.reserve(TENANT, 0.1)
    with pytest.raises(BadRequestError, match="actual_usd"):
        await ledger.settle(reservation, -0.1)
    with pytest.raises(BadRequestError, match="Reservation"):
        await ledger.release("not a reservation")  # type: ignore[arg-type]
    forged = Reservation(TENANT, "x", 0.1, "2026-03-14 0", "2026-03", 0.0)
    with pytest.raises(BadRequestError, match="malformed"):
        await ledger.settle(forged, 0.1)
    assert (await ledger.status(TENANT)).daily_reserved == 0.1  # nothing of the above took effect


def test_status_shares() -> None:
    status = BudgetStatus(TENANT, 10.0, 1.0, 0.0, 100.0, 60.0, 0.0)
    assert (status.remaining_usd, status.remaining_share) == (9.0, 0.9)  # the daily window is tighter
    status = BudgetStatus(TENANT, 10.0, 1.0, 0.0, 100.0, 95.0, 0.0)
    assert (status.remaining_usd, status.remaining_share) == (5.0, 0.05)
    status = BudgetStatus(TENANT, 0.0, 0.0, 0.0, None, 3.0, 0.0)
    assert (status.remaining_usd, status.remaining_share) == (0.0, 0.0)


# -- both back ends agree ------------------------------------------------------------------------

Step = tuple[str, int, float]  # (operation, which reservation / tenant, amount or seconds)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 1), st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.4, 0.7])),
        st.tuples(st.just("settle"), st.integers(0, 9), st.sampled_from([0.0, 0.03, 0.1, 0.3, 0.9])),
        st.tuples(st.just("release"), st.integers(0, 9), st.just(0.0)),
        st.tuples(st.just("wait"), st.just(0), st.sampled_from([1.0, 20.0, 3_600.0, 40_000.0, 86_400.0])),
    ),
    max_size=25,
)


async def _replay(ledger: BudgetLedger, clock: Clock, plan: list[Step]) -> list[Any]:
    """What each step gave: a reservation's windows or a refusal's remaining, and the statuses."""
    tenants = ("a", "b")
    held: list[Reservation] = []
    seen: list[Any] = []
    for operation, index, value in plan:
        if operation == "reserve":
            try:
                reservation = await ledger.reserve(tenants[index], value)
                held.append(reservation)
                seen.append((reservation.day, reservation.month, reservation.expires_at))
            except BudgetExceeded as refused:
                seen.append(("refused", refused.remaining_usd))
        elif operation == "wait":
            clock.advance(value)
        elif held:
            reservation = held[index % len(held)]
            if operation == "settle":
                await ledger.settle(reservation, value)
            else:
                await ledger.release(reservation)
        seen.extend([await ledger.status(tenant) for tenant in tenants])
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_both_back_ends_give_the_same_answers(redis_url: str, redis_prefix: str, plan: list[Step]) -> None:
    caps = {"a": BudgetCaps(daily_usd=1.0, monthly_usd=1.5)}
    default = BudgetCaps(daily_usd=0.5)

    async def run() -> tuple[list[Any], list[Any]]:
        in_process = InProcessBudgets(caps=caps, default=default, reservation_ttl_s=30, clock=(local := Clock()))
        prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
        shared = RedisBudgets(
            redis_url, prefix=prefix, caps=caps, default=default, reservation_ttl_s=30, clock=(remote := Clock())
        )
        try:
            return await _replay(in_process, local, plan), await _replay(shared, remote, plan)
        finally:
            await shared.close()

    expected, actual = asyncio.run(run())
    assert actual == expected


# -- Redis specifics -------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_redis_fails_closed() -> None:
    ledger = RedisBudgets(f"redis://127.0.0.1:{_closed_port()}/0", default=BudgetCaps(daily_usd=1.0), timeout_s=1)
    try:
        with pytest.raises(BudgetUnavailable, match="could not be checked") as failed:
            await ledger.reserve(TENANT, 0.1)
        assert failed.value.tenant == TENANT
        assert failed.value.__cause__ is not None
        with pytest.raises(BudgetUnavailable):
            await ledger.status(TENANT)
        reservation = Reservation(TENANT, "abc", 0.1, "2026-03-14", "2026-03", 0.0)
        with pytest.raises(BudgetUnavailable):
            await ledger.settle(reservation, 0.1)
    finally:
        await ledger.close()


def test_redis_arguments_are_checked_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="invalid Redis URL") as bad:
        RedisBudgets("http://user:secret@127.0.0.1:6379/0")
    assert "secret" not in str(bad.value)
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisBudgets()
    with pytest.raises(ConfigurationError, match="timeout_s"):
        RedisBudgets("redis://127.0.0.1:6379/0", timeout_s=0)


async def test_redis_keys_are_namespaced_and_expire(redis_url: str, redis_prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    ledger = RedisBudgets(client=client, prefix=redis_prefix, default=BudgetCaps(daily_usd=1.0))
    try:
        await ledger.settle(await ledger.reserve(TENANT, 0.5), 0.25)
        await ledger.reserve(TENANT, 0.1)
        keys = [key.decode() async for key in client.scan_iter(match=f"{redis_prefix}*")]
        base = redis_prefix + "{creator_42}:"
        assert all(key.startswith(base) for key in keys), keys
        assert {key[len(base) :].split(":")[0] for key in keys} == {"day", "month", "pending", "records"}
        ttls = {key: await client.ttl(key) for key in keys}
        day_key = next(key for key in keys if ":day:" in key)
        month_key = next(key for key in keys if ":month:" in key)
        assert 0 < ttls[day_key] <= 2 * 86_400
        assert 2 * 86_400 < ttls[month_key] <= 62 * 86_400
        assert all(ttl > 0 for ttl in ttls.values())  # nothing lives for ever

        await client.script_flush()  # a restarted server forgets its scripts: EVALSHA falls back to EVAL
        assert (await ledger.status(TENANT)).daily_spent == 0.25
        await ledger.close()
        assert await client.ping()  # a client given to the ledger stays open
    finally:
        await client.aclose()


class _ReplyDropper:
    """A loopback TCP proxy in front of Redis that, when armed, drops the next reply and closes the
    connection: the command ran on the server, but the client sees a broken connection and retries."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)

        async def requests() -> None:
            while data := await client_reader.read(65536):
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def replies() -> None:
            while data := await upstream_reader.read(65536):
                if self.armed:
                    self.armed = False
                    self.dropped += 1
                    return
                client_writer.write(data)
                await client_writer.drain()

        pumps = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            client_writer.close()
            upstream_writer.close()


async def test_a_retried_redis_call_is_not_counted_twice(redis_url: str, redis_prefix: str) -> None:
    dropper = _ReplyDropper(redis_url)
    async with dropper as proxied:
        ledger = RedisBudgets(proxied, prefix=redis_prefix, default=BudgetCaps(daily_usd=1.0))
        try:
            await ledger.status(TENANT)
            dropper.armed = True
            reservation = await ledger.reserve(TENANT, 0.4)  # ran once, reply lost, ran again
            assert dropper.dropped == 1
            assert (await ledger.status(TENANT)).daily_reserved == 0.4
            dropper.armed = True
            await ledger.settle(reservation, 0.3)
            assert dropper.dropped == 2
            status = await ledger.status(TENANT)
            assert (status.daily_spent, status.daily_reserved) == (0.3, 0)
        finally:
            await ledger.close()


async def test_many_settled_reservations_leave_expiry_intact() -> None:
    clock = Clock()
    ledger = InProcessBudgets(default=BudgetCaps(daily_usd=100.0), reservation_ttl_s=60, clock=clock)
    forgotten = await ledger.reserve(TENANT, 1.0)
    for _ in range(3000):  # enough settled entries to make the ledger compact its expiry queue
        await ledger.settle(await ledger.reserve(TENANT, 0.01), 0.01)
    clock.advance(60)
    status = await ledger.status(TENANT)
    assert (status.daily_spent, status.daily_reserved) == (30.0, 0)
    await ledger.settle(forgotten, 1.0)
    assert (await ledger.status(TENANT)).daily_spent == 31.0


# -- across processes ----------------------------------------------------------------------------

CROSS_CAP_USD = 1.0
CROSS_PROCESSES = 4
CROSS_REQUESTS = 50
CROSS_MAX_RESERVE_USD = 0.02


def _spend(url: str, prefix: str, seed: int, exact: bool, barrier: Any, results: Any) -> None:
    """One worker process: 50 concurrent requests, each reserving then settling; reports what it settled."""
    results.put(asyncio.run(_spend_async(url, prefix, seed, exact, barrier)))


async def _spend_async(url: str, prefix: str, seed: int, exact: bool, barrier: Any) -> list[float | None]:
    rng = random.Random(seed)
    plans = [
        (rng.uniform(0.001, CROSS_MAX_RESERVE_USD), rng.random(), rng.uniform(0, 0.005)) for _ in range(CROSS_REQUESTS)
    ]
    ledger = RedisBudgets(url, prefix=prefix, default=BudgetCaps(daily_usd=CROSS_CAP_USD), timeout_s=10)
    await ledger.status(TENANT)  # connected, scripts loaded
    await asyncio.to_thread(barrier.wait)  # every process starts its burst together

    async def one(amount: float, share: float, call_s: float) -> float | None:
        try:
            reservation = await ledger.reserve(TENANT, amount)
        except BudgetExceeded:
            return None
        await asyncio.sleep(call_s)  # the model call
        actual = round(amount if exact else amount * share, 9)
        await ledger.settle(reservation, actual)
        return actual

    try:
        return list(await asyncio.gather(*(one(*plan) for plan in plans)))
    finally:
        await ledger.close()


@pytest.mark.parametrize("exact", [True, False], ids=["actual-equals-reserved", "actual-below-reserved"])
async def test_workers_in_four_processes_never_overspend(redis_url: str, redis_prefix: str, exact: bool) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(CROSS_PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_spend, args=(redis_url, redis_prefix, seed, exact, barrier, results))
        for seed in range(CROSS_PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [
            outcome
            for _ in processes
            for outcome in await asyncio.to_thread(results.get, True, 60)  # type: ignore[arg-type]
        ]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in processes)

    settled = [actual for actual in outcomes if actual is not None]
    assert len(outcomes) == CROSS_PROCESSES * CROSS_REQUESTS
    assert 0 < len(settled) < len(outcomes)  # demand (about 2 USD) passed the cap: some were refused
    ledger = RedisBudgets(redis_url, prefix=redis_prefix, default=BudgetCaps(daily_usd=CROSS_CAP_USD))
    try:
        status = await ledger.status(TENANT)
    finally:
        await ledger.close()
    assert status.daily_reserved == 0
    assert status.daily_spent == pytest.approx(sum(settled), abs=1e-6)  # every settle counted once
    # Reservations hold the estimate and the actual never exceeds it here, so the cap holds
    # exactly (within cap + one request's largest reservation, whatever the timing).
    assert status.daily_spent <= CROSS_CAP_USD
    if exact:
        assert status.daily_spent > CROSS_CAP_USD - CROSS_MAX_RESERVE_USD  # refusals came only at the cap
