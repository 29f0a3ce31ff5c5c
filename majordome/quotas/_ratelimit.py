"""Per-user and per-tenant rate limits for the library's callers (:meth:`RateLimiter.check`).

Token buckets, not windows: a user with ``per_user_per_minute=30`` may send 30 requests at once,
then one every two seconds (the bucket refills continuously at 30 per ``window_s``). A request is
counted against the user's bucket and the tenant's bucket together, all or nothing: a refused
request spends neither. Users are counted per tenant (``alice`` of two tenants is two users).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from majordome._errors import ConfigurationError, MajordomeError
from majordome.quotas._buckets import BucketSpec, LocalBuckets, Outcome
from majordome.quotas._redis import RedisBuckets

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["InProcessRateLimiter", "RateLimited", "RateLimiter", "RateLimits", "RedisRateLimiter"]


class RateLimited(MajordomeError):
    """The caller sent too many requests. ``retry_after_s``: when one more would be admitted;
    ``scope``: ``"user"`` or ``"tenant"``, the limit that refused (the user's when both did)."""

    def __init__(self, message: str, *, tenant: str, user: str | None, scope: str, retry_after_s: float) -> None:
        self.tenant = tenant
        self.user = user
        self.scope = scope
        self.retry_after_s = retry_after_s
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per ``window_s`` (a minute) for each user and each tenant; None: no limit."""

    per_user_per_minute: int | None = 30
    per_tenant_per_minute: int | None = None
    window_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("per_user_per_minute", "per_tenant_per_minute"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"RateLimits.{name} must be an integer >= 1 or None, got {value!r}")
        if not self.window_s > 0:
            raise ConfigurationError(f"RateLimits.window_s must be > 0, got {self.window_s!r}")


class RateLimiter(ABC):
    """Counts each request of a tenant's user; raises :class:`RateLimited` over a limit."""

    def __init__(self, limits: RateLimits, prefix: str = "") -> None:
        if not isinstance(limits, RateLimits):
            raise ConfigurationError(f"RateLimiter needs RateLimits, got {limits!r}")
        self.limits = limits
        self._prefix = prefix

    @abstractmethod
    async def _take(self, specs: list[BucketSpec]) -> Outcome: ...

    def _specs(self, tenant: str, user: str | None) -> list[tuple[str, BucketSpec]]:
        limits, t = self.limits, quote(tenant, safe="")
        specs: list[tuple[str, BucketSpec]] = []
        if limits.per_user_per_minute is not None and user is not None:
            n = limits.per_user_per_minute
            key = f"{self._prefix}{{{t}}}:u:{quote(user, safe='')}"
            specs.append(("user", BucketSpec(key, float(n), n / limits.window_s, 1.0)))
        if limits.per_tenant_per_minute is not None:
            n = limits.per_tenant_per_minute
            specs.append(("tenant", BucketSpec(f"{self._prefix}{{{t}}}:t", float(n), n / limits.window_s, 1.0)))
        return specs

    async def check(self, tenant: str, user: str | None = None) -> None:
        """Count one request; :class:`RateLimited` (nothing counted) when a limit refuses it. A
        request without a user is held to the tenant's limit only."""
        specs = self._specs(tenant, user)
        if not specs:
            return
        outcome = await self._take([s for _, s in specs])
        if outcome.taken:
            return
        scope = next((name for (name, s), level in zip(specs, outcome.levels, strict=True) if level < 1.0), specs[0][0])
        who = f"user {user!r} of tenant {tenant!r}" if scope == "user" else f"tenant {tenant!r}"
        limit = self.limits.per_user_per_minute if scope == "user" else self.limits.per_tenant_per_minute
        raise RateLimited(
            f"{who} is over its limit of {limit} requests per {self.limits.window_s:g} s; "
            f"retry in {outcome.wait_s:.1f} s",
            tenant=tenant,
            user=user,
            scope=scope,
            retry_after_s=outcome.wait_s,
        )

    async def aclose(self) -> None:
        return None


class InProcessRateLimiter(RateLimiter):
    """The buckets in this process."""

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limits)
        self._buckets = LocalBuckets(clock)

    async def _take(self, specs: list[BucketSpec]) -> Outcome:
        return self._buckets.run("take", specs)


class RedisRateLimiter(RateLimiter):
    """The buckets in Redis (one Lua script per check), shared by every process. A Redis outage
    degrades to in-process buckets with one warning; it never fails a request."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        url: str | None = None,
        client: Redis | None = None,
        prefix: str = "majordome:ratelimit:",
        timeout_s: float = 0.5,
        redis_retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limits, prefix)
        self._buckets = RedisBuckets(
            what="RedisRateLimiter",
            url=url,
            client=client,
            timeout_s=timeout_s,
            retry_s=redis_retry_s,
            ttl_s=2 * limits.window_s,
            clock=clock,
        )

    @property
    def degraded(self) -> bool:
        return self._buckets.degraded

    async def _take(self, specs: list[BucketSpec]) -> Outcome:
        return await self._buckets.run("take", specs)

    async def aclose(self) -> None:
        await self._buckets.aclose()
