"""Buckets in Redis, shared by every process, that degrade to this process's buckets when Redis
cannot be reached.

An outage is not an error of the request: the operation runs on in-process buckets with the same
sizes instead, one warning (``quotas.redis_unavailable``) is logged when the outage begins, and
Redis is not tried again for ``retry_s`` (so a dead server costs one failed call per
``retry_s``, not one per request). The first success after that logs ``quotas.redis_recovered``.
While degraded, each process enforces the whole limit on its own: N processes may admit up to
N times the quota, and a provider's 429 (handled by the retry layer) is the backstop. Unlike
budgets, which fail closed, throttling protects capacity, not money.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from majordome._errors import ConfigurationError
from majordome._logging import get_logger
from majordome.quotas._buckets import BUCKETS_LUA, BucketOp, BucketSpec, LocalBuckets, Outcome

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisBuckets"]

_log = get_logger("majordome.quotas")


class RedisBuckets:
    """Runs bucket operations through :data:`BUCKETS_LUA`; see the module docstring for outages.

    ``what`` names the user of the buckets in log events and configuration errors.
    """

    def __init__(
        self,
        *,
        what: str,
        url: str | None,
        client: Redis | None,
        timeout_s: float,
        retry_s: float,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError as error:
            raise ConfigurationError(f"{what} needs the redis package: pip install 'majordome[redis]'") from error
        if (url is None) == (client is None):
            raise ConfigurationError(f"{what} needs exactly one of url= and client=")
        if not timeout_s > 0:
            raise ConfigurationError(f"{what} timeout_s must be > 0, got {timeout_s!r}")
        if not retry_s >= 0:
            raise ConfigurationError(f"{what} redis_retry_s must be >= 0, got {retry_s!r}")
        self._owns_client = client is None
        if client is None:
            try:
                client = Redis.from_url(str(url), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            except ValueError as error:  # redis-py names the accepted schemes; the URL is not repeated
                raise ConfigurationError(f"{what}: invalid Redis URL: {error}") from None
        self._client: Redis = client
        self._script: AsyncScript = client.register_script(BUCKETS_LUA)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self._what = what
        self._retry_s = retry_s
        self._ttl_ms = int(ttl_s * 1000) + 1000
        self._clock = clock
        self.fallback = LocalBuckets(clock)
        self._down_until: float | None = None  # None: Redis is believed up

    @property
    def degraded(self) -> bool:
        """Whether the last operation ran on the in-process buckets."""
        return self._down_until is not None

    async def run(self, op: BucketOp, specs: Sequence[BucketSpec], max_wait: float = 0.0) -> Outcome:
        if not specs:
            return Outcome(True, 0.0, ())
        if self._down_until is not None and self._clock() < self._down_until:
            return self.fallback.run(op, specs, max_wait)
        args: list[Any] = [op, self._ttl_ms, repr(float(max_wait))]
        for spec in specs:
            args += [repr(spec.capacity), repr(spec.rate), repr(spec.amount)]
        try:
            raw = await self._script(keys=[s.key for s in specs], args=args)
        except self._errors as error:
            if self._down_until is None:
                _log.warning(
                    "quotas.redis_unavailable",
                    what=self._what,
                    error=type(error).__name__,
                    degraded_to="in-process",
                    retry_s=self._retry_s,
                )
            self._down_until = self._clock() + self._retry_s
            return self.fallback.run(op, specs, max_wait)
        if self._down_until is not None:
            self._down_until = None
            _log.info("quotas.redis_recovered", what=self._what)
        return Outcome(bool(int(raw[0])), float(raw[1]), tuple(float(v) for v in raw[2:]))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
