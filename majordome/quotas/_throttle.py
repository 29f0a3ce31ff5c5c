"""Client-side throttling of model deployments to their requests- and tokens-per-minute quotas.

Each deployment with a :class:`DeploymentQuota` has two token buckets, one counting requests and
one counting tokens. So that no window of ``window_s`` seconds ever admits more than the quota,
a bucket refills continuously with ``1 - burst`` of the quota over the window, ``r = (Q - B) /
window_s`` a second with ``B = burst * Q``, and holds ``C = B - r * slack_s``, so that even a
window that starts ``slack_s`` late sees at most ``C + r * (window_s + slack_s) == Q``. The price
is throughput: a saturated deployment is sent ``1 - burst`` of its quota per window (90 % with
the default ``burst=0.1``), and one request may ask for at most ``C`` tokens (larger ones are
refused with :class:`QuotaExceedsCapacity`). Waiters reserve their turn (see
:meth:`Throttle.acquire`): first come, first served.

A call takes its *estimated* tokens (prompt plus expected output) before it is made and settles
to the actual usage after (:meth:`Throttle.adjust`): an over-estimate is given back, an
under-estimate leaves the bucket in debt for the calls that follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from majordome._errors import ConfigurationError, MajordomeError
from majordome.quotas._buckets import BucketOp, BucketSpec, LocalBuckets, Outcome
from majordome.quotas._redis import RedisBuckets

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "Acquired",
    "DeploymentQuota",
    "InProcessThrottle",
    "QuotaExceedsCapacity",
    "QuotaExhausted",
    "RedisThrottle",
    "Room",
    "Saturation",
    "Throttle",
    "Wait",
]


class QuotaExhausted(MajordomeError):
    """The deployment's quota could not admit the call before the deadline.

    ``retry_after_s``: how long until it could have (as last computed; others may take it first).
    """

    def __init__(self, message: str, *, deployment: str, retry_after_s: float) -> None:
        self.deployment = deployment
        self.retry_after_s = retry_after_s
        super().__init__(message)


class QuotaExceedsCapacity(QuotaExhausted):
    """One call asks for more tokens than the deployment's bucket can ever hold: waiting cannot help
    (``retry_after_s`` is infinite). Raise the quota's ``burst``, or send a smaller request."""


@dataclass(frozen=True, slots=True)
class DeploymentQuota:
    """A deployment's quota: requests and tokens per window (a minute unless the throttle says
    otherwise); None leaves that dimension unlimited. ``burst``: the share of the quota that may
    be spent at once (see the module docstring). ``slack_s``: how much later than the client
    took it a provider may count a call, and not equally late for every call (connections being
    opened, queues): the burst is smaller by what refills in that time, so that a provider's
    window, however it falls, never sees more than the quota (measured: without it, the first
    window after a quiet spell drew a few 429s)."""

    rpm: int | None
    tpm: int | None
    burst: float = 0.1
    slack_s: float = 0.5

    def __post_init__(self) -> None:
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ConfigurationError(f"DeploymentQuota.{name} must be an integer >= 2 or None, got {value!r}")
        if not 0 < self.burst < 1:
            raise ConfigurationError(f"DeploymentQuota.burst must be in (0, 1), got {self.burst!r}")
        if not 0 <= self.slack_s < 60:
            raise ConfigurationError(f"DeploymentQuota.slack_s must be in [0, 60), got {self.slack_s!r}")

    def buckets(self, window_s: float) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """(capacity, refill per second) of the request bucket and of the token bucket."""

        def one(quota: int | None, least: float) -> tuple[float, float] | None:
            if quota is None:
                return None
            burst = min(max(least, self.burst * quota), quota / 2)
            rate = (quota - burst) / window_s
            # the slack never takes more than half the burst (only a window of seconds would need it)
            return max(least, burst / 2, burst - rate * self.slack_s), rate

        return one(self.rpm, 1.0), one(self.tpm, 1.0)


@dataclass(frozen=True, slots=True)
class Acquired:
    """The call may go ahead; ``tokens`` were taken (settle them with :meth:`Throttle.adjust`)."""

    deployment: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing was taken; the buckets will hold enough in ``seconds`` (if nobody else takes it)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Room:
    """A deployment's buckets as last read: (level, capacity, refill per second) of its request
    bucket and of its token bucket (None: that dimension is unlimited), and the cost multiplier
    its headroom maps to (see :class:`Saturation`; capped at its ``max_multiplier`` here: whether a
    call fits is :meth:`wait_s`'s to say). What the router weighs; the call itself still takes
    from the buckets, which decide."""

    requests: tuple[float, float, float] | None
    tokens: tuple[float, float, float] | None
    cost_multiplier: float = 1.0

    @property
    def headroom(self) -> float:
        """How full the buckets are, in [0, 1]: the emptier of the two."""
        shares = [min(1.0, max(0.0, b[0] / b[1])) for b in (self.requests, self.tokens) if b is not None]
        return min(shares, default=1.0)

    def wait_s(self, tokens: int) -> float:
        """Seconds until one call of ``tokens`` would fit (0: now; inf: never)."""
        wait = 0.0
        for bucket, amount in ((self.requests, 1.0), (self.tokens, float(tokens))):
            if bucket is None:
                continue
            level, capacity, rate = bucket
            if amount > capacity:
                return math.inf
            if level < amount:
                wait = max(wait, (amount - level) / rate if rate > 0 else math.inf)
        return wait


@dataclass(frozen=True, slots=True)
class Saturation:
    """Maps a deployment's headroom (1: buckets full, 0: empty) to a cost multiplier for routing.

    The curve: ``1.0`` while headroom >= ``knee``; between ``floor`` and ``knee`` it rises as a
    parabola, ``1 + (max_multiplier - 1) * ((knee - h) / (knee - floor)) ** 2``, flat near the
    knee and steep near the floor, reaching ``max_multiplier`` at ``floor``; at or below
    ``floor`` it is ``inf``: the deployment counts as unavailable (:meth:`available` is False).
    With the defaults: h=0.5 -> 1.0, 0.3 -> 1.59, 0.15 -> 2.81, 0.05 -> 4.0, below -> inf.
    """

    knee: float = 0.5
    floor: float = 0.05
    max_multiplier: float = 4.0

    def __post_init__(self) -> None:
        if not 0 <= self.floor < self.knee <= 1:
            raise ConfigurationError(
                f"Saturation needs 0 <= floor < knee <= 1, got floor={self.floor}, knee={self.knee}"
            )
        if not self.max_multiplier >= 1:
            raise ConfigurationError(f"Saturation.max_multiplier must be >= 1, got {self.max_multiplier}")

    def multiplier(self, headroom: float) -> float:
        if headroom >= self.knee:
            return 1.0
        if headroom <= self.floor:
            return math.inf
        x = (self.knee - headroom) / (self.knee - self.floor)
        return 1.0 + (self.max_multiplier - 1.0) * x * x

    def available(self, headroom: float) -> bool:
        return headroom > self.floor


class Throttle(ABC):
    """Per-deployment request and token buckets. Deployments without a quota are never throttled.

    ``clock`` and ``sleep`` time :meth:`acquire` (deadlines are on ``clock``, monotonic seconds by
    default); ``window_s`` is the quota's window (60 s; shorter in tests and benchmarks).
    """

    def __init__(
        self,
        quotas: Mapping[str, DeploymentQuota],
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not window_s > 0:
            raise ConfigurationError(f"throttle window_s must be > 0, got {window_s!r}")
        for name, quota in quotas.items():
            if not isinstance(quota, DeploymentQuota):
                raise ConfigurationError(f"quota of deployment {name!r} must be a DeploymentQuota, got {quota!r}")
        self.quotas = dict(quotas)
        self.window_s = window_s
        self.saturation = Saturation()
        self.room_max_age_s = 0.05
        self._rooms: dict[str, tuple[float, Room]] = {}
        self._clock = clock
        self._sleep = sleep

    @abstractmethod
    async def _run(self, op: BucketOp, specs: list[BucketSpec], max_wait: float = 0.0) -> Outcome: ...

    def _key(self, deployment: str, kind: str) -> str:
        return f"{{{quote(deployment, safe='')}}}:{kind}"

    def _specs(self, deployment: str, requests: float, tokens: float) -> list[BucketSpec]:
        quota = self.quotas.get(deployment)
        if quota is None:
            return []
        req, tok = quota.buckets(self.window_s)
        specs = []
        if req is not None:
            specs.append(BucketSpec(self._key(deployment, "req"), req[0], req[1], requests))
        if tok is not None:
            specs.append(BucketSpec(self._key(deployment, "tok"), tok[0], tok[1], tokens))
        return specs

    def _checked_specs(self, deployment: str, tokens: int) -> list[BucketSpec]:
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        specs = self._specs(deployment, 1.0, float(tokens))
        for spec in specs:
            if spec.amount > spec.capacity:
                raise QuotaExceedsCapacity(
                    f"a call of {tokens} tokens can never be admitted to deployment {deployment!r}: its token "
                    f"bucket holds at most {spec.capacity:.0f} (burst {self.quotas[deployment].burst:g} of "
                    f"{self.quotas[deployment].tpm} tokens per {self.window_s:g} s)",
                    deployment=deployment,
                    retry_after_s=math.inf,
                )
        return specs

    async def try_acquire(self, deployment: str, tokens: int) -> Acquired | Wait:
        """Take one request and ``tokens`` from ``deployment``'s buckets now, or say how long to
        wait; never blocks. :class:`QuotaExceedsCapacity` when ``tokens`` can never fit."""
        specs = self._checked_specs(deployment, tokens)
        outcome = await self._run("take", specs)
        if specs:
            self._seen(deployment, outcome.levels, self._clock())
        if outcome.taken:
            return Acquired(deployment, tokens)
        return Wait(outcome.wait_s)

    async def acquire(self, deployment: str, tokens: int, deadline: float) -> Acquired:
        """Take like :meth:`try_acquire`; when the buckets will hold enough before ``deadline`` (on
        the throttle's clock), reserve the call's place now and wait for it: callers are served in
        the order they came, none is starved by later ones. Raises :class:`QuotaExhausted` (with
        the time still to wait) at once when the wait would pass the deadline: waiting that cannot
        succeed is not done. A waiter cancelled before its turn gives its place back."""
        specs = self._checked_specs(deployment, tokens)
        left = max(0.0, deadline - self._clock())
        outcome = await self._run("take", specs, left)
        if specs:
            self._seen(deployment, outcome.levels, self._clock())
        if not outcome.taken:
            raise QuotaExhausted(
                f"deployment {deployment!r} is at its quota: {tokens} tokens could be admitted in "
                f"{outcome.wait_s:.2f} s, after the deadline ({left:.2f} s left)",
                deployment=deployment,
                retry_after_s=outcome.wait_s,
            )
        if outcome.wait_s > 0:
            try:
                await self._sleep(outcome.wait_s)
            except BaseException:
                back = [BucketSpec(s.key, s.capacity, s.rate, -s.amount) for s in specs]
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._run("give", back))
                self._rooms.pop(deployment, None)
                raise
        return Acquired(deployment, tokens)

    async def adjust(self, deployment: str, delta_tokens: int) -> None:
        """Settle a call: ``delta_tokens`` = actual - estimated (negative gives tokens back)."""
        specs = [s for s in self._specs(deployment, 0.0, float(delta_tokens)) if s.key.endswith(":tok")]
        if specs and delta_tokens:
            await self._run("give", specs)
            self._rooms.pop(deployment, None)

    async def headroom(self, deployment: str) -> float:
        """How full the deployment's buckets are, in [0, 1]: the emptier of the two (1.0 without a
        quota). Feed it to :class:`Saturation`."""
        specs = self._specs(deployment, 0.0, 0.0)
        if not specs:
            return 1.0
        outcome = await self._run("peek", specs)
        return min(max(0.0, min(1.0, level / spec.capacity)) for spec, level in zip(specs, outcome.levels, strict=True))

    async def room(self, deployment: str) -> Room | None:
        """The deployment's buckets now (None without a quota), with the cost multiplier of
        :attr:`saturation`. Read at most every ``room_max_age_s`` per deployment: concurrent
        requests share one read (the buckets move slowly next to a request's rate)."""
        quota = self.quotas.get(deployment)
        if quota is None:
            return None
        now = self._clock()
        cached = self._rooms.get(deployment)
        if cached is not None and now - cached[0] < self.room_max_age_s:
            return cached[1]
        outcome = await self._run("peek", self._specs(deployment, 0.0, 0.0))
        return self._seen(deployment, outcome.levels, now)

    def _seen(self, deployment: str, levels: tuple[float, ...], now: float) -> Room:
        """Remember the levels an operation read (every operation returns them)."""
        req, tok = self.quotas[deployment].buckets(self.window_s)
        found = iter(levels)
        requests = (next(found), *req) if req is not None else None
        tokens = (next(found), *tok) if tok is not None else None
        room = Room(requests, tokens)
        multiplier = min(self.saturation.multiplier(room.headroom), self.saturation.max_multiplier)
        room = Room(requests, tokens, multiplier)
        self._rooms[deployment] = (now, room)
        return room

    async def rooms(self, deployments: Iterable[str]) -> dict[str, Room]:
        """:meth:`room` of each deployment that has a quota (read concurrently)."""
        names = [d for d in dict.fromkeys(deployments) if d in self.quotas]
        if not names:
            return {}
        found = await asyncio.gather(*(self.room(d) for d in names))
        return {d: r for d, r in zip(names, found, strict=True) if r is not None}

    async def aclose(self) -> None:
        return None


class InProcessThrottle(Throttle):
    """The buckets in this process (one worker, or tests)."""

    def __init__(
        self,
        quotas: Mapping[str, DeploymentQuota],
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(quotas, window_s=window_s, clock=clock, sleep=sleep)
        self._buckets = LocalBuckets(clock)

    async def _run(self, op: BucketOp, specs: list[BucketSpec], max_wait: float = 0.0) -> Outcome:
        return self._buckets.run(op, specs, max_wait)


class RedisThrottle(Throttle):
    """The buckets in Redis, shared by every process: one Lua script per operation, timed by the
    Redis server's clock. A Redis outage degrades to in-process buckets with one warning (see
    :mod:`majordome.quotas._redis`); it never fails a request. Give ``url`` or ``client``."""

    def __init__(
        self,
        quotas: Mapping[str, DeploymentQuota],
        *,
        url: str | None = None,
        client: Redis | None = None,
        prefix: str = "majordome:quota:",
        window_s: float = 60.0,
        timeout_s: float = 0.5,
        redis_retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(quotas, window_s=window_s, clock=clock, sleep=sleep)
        self.prefix = prefix
        self._buckets = RedisBuckets(
            what="RedisThrottle",
            url=url,
            client=client,
            timeout_s=timeout_s,
            retry_s=redis_retry_s,
            ttl_s=2 * window_s,
            clock=clock,
        )

    @property
    def degraded(self) -> bool:
        """Whether Redis is unreachable and this process throttles on its own."""
        return self._buckets.degraded

    def _key(self, deployment: str, kind: str) -> str:
        return self.prefix + super()._key(deployment, kind)

    async def _run(self, op: BucketOp, specs: list[BucketSpec], max_wait: float = 0.0) -> Outcome:
        return await self._buckets.run(op, specs, max_wait)

    async def aclose(self) -> None:
        await self._buckets.aclose()
