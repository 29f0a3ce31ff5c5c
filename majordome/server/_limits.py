"""Request limits and per-tenant rate limiting (in process, or shared through Redis)."""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from majordome._errors import ConfigurationError
from majordome._logging import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["InProcessRateLimiter", "RateLimiter", "RedisRateLimiter", "ServerLimits"]

_log = get_logger("majordome.server")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one request may be, and how many a tenant may send.

    ``requests_per_minute``: per tenant, in fixed one-minute windows (None: no limit); shared by
    every server process when ``redis_url`` is set. ``shutdown_grace_s``: how long shutdown waits
    for streams in flight before closing the Majordome.
    """

    max_body_bytes: int = 1_000_000
    max_messages: int = 256
    requests_per_minute: int | None = 600
    redis_url: str | None = None
    redis_prefix: str = "majordome:ratelimit:"
    shutdown_grace_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigurationError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.max_messages < 1:
            raise ConfigurationError(f"max_messages must be >= 1, got {self.max_messages}")
        if self.requests_per_minute is not None and self.requests_per_minute < 1:
            raise ConfigurationError(f"requests_per_minute must be >= 1 or None, got {self.requests_per_minute}")
        if self.shutdown_grace_s < 0:
            raise ConfigurationError(f"shutdown_grace_s must be >= 0, got {self.shutdown_grace_s}")

    def rate_limiter(self) -> RateLimiter | None:
        if self.requests_per_minute is None:
            return None
        if self.redis_url:
            return RedisRateLimiter(self.redis_url, self.requests_per_minute, prefix=self.redis_prefix)
        return InProcessRateLimiter(self.requests_per_minute)


class RateLimiter(ABC):
    """Counts a tenant's requests; :meth:`hit` says how long to wait when over the limit."""

    window_s: float = 60.0

    @abstractmethod
    async def hit(self, tenant: str) -> float | None:
        """Count one request of ``tenant``: None when allowed, else the seconds until it may retry."""

    async def ping(self) -> str | None:
        """None when the limiter works, else why not (for readiness)."""
        return None

    async def close(self) -> None:
        return None


class InProcessRateLimiter(RateLimiter):
    """Fixed one-minute windows, counted in this process."""

    def __init__(self, per_minute: int, *, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # tenant -> (window number, count)

    async def hit(self, tenant: str) -> float | None:
        now = float(self._clock())
        window = int(now // self.window_s)
        with self._lock:
            start, count = self._windows.get(tenant, (window, 0))
            if start != window:
                count = 0
                if len(self._windows) > 100_000:  # drop stale windows of tenants gone quiet
                    self._windows = {t: w for t, w in self._windows.items() if w[0] == window}
            count += 1
            self._windows[tenant] = (window, count)
        if count <= self.per_minute:
            return None
        return (window + 1) * self.window_s - now


# INCR the window's counter; the first hit sets its expiry. Returns the count and the ms left.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""


class RedisRateLimiter(RateLimiter):
    """Fixed one-minute windows counted in Redis (one Lua script per request), shared by every
    server process. When Redis cannot be reached, requests are let through (logged): the limit
    protects capacity, and budgets (which fail closed) still guard spending."""

    def __init__(
        self, url: str, per_minute: int, *, prefix: str = "majordome:ratelimit:", timeout_s: float = 1.0
    ) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError as error:
            raise ConfigurationError(
                "a Redis rate limit needs the redis package: pip install 'majordome[redis]'"
            ) from error
        try:
            self._client: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        except (
            ValueError
        ) as error:  # redis-py names the accepted schemes; the URL (maybe with a password) is not repeated
            raise ConfigurationError(f"rate limit: invalid Redis URL: {error}") from None
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self.per_minute = per_minute
        self.prefix = prefix
        self._script = self._client.register_script(_HIT)

    async def hit(self, tenant: str) -> float | None:
        window = int(time.time() // self.window_s)
        key = f"{self.prefix}{tenant}:{window}"
        try:
            count, ttl_ms = await self._script(keys=[key], args=[int(self.window_s * 1000) + 1000])
        except self._errors as error:
            _log.warning("server.ratelimit_unavailable", tenant=tenant, error=type(error).__name__)
            return None
        if int(count) <= self.per_minute:
            return None
        ttl = int(ttl_ms)
        return max(ttl / 1000.0, 0.001) if ttl > 0 else self.window_s

    async def ping(self) -> str | None:
        try:
            await self._client.ping()
        except self._errors as error:
            return f"the rate limit's Redis is unreachable ({type(error).__name__})"
        return None

    async def close(self) -> None:
        await self._client.aclose()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up (at least 1)."""
    return str(max(1, math.ceil(seconds)))
