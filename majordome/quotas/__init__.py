"""Quotas: client-side throttling of deployments to their rpm/tpm quotas, and rate limits of the
library's callers per user and tenant, in process or shared through Redis.

The Majordome builds them from its config (``deployment_quotas``, ``rate_limit_per_*``,
``redis_url``) and its router weighs each deployment's :class:`Room`; the pieces also work
alone::

    throttle = RedisThrottle({"gpt-4o-eu": DeploymentQuota(rpm=100, tpm=100_000)}, url=redis_url)
    grant = await throttle.acquire("gpt-4o-eu", estimated_tokens, deadline=time.monotonic() + 5)
    ...  # the call
    await throttle.adjust("gpt-4o-eu", actual_tokens - grant.tokens)
"""

from majordome.quotas._ratelimit import (
    InProcessRateLimiter,
    RateLimited,
    RateLimiter,
    RateLimits,
    RedisRateLimiter,
)
from majordome.quotas._throttle import (
    Acquired,
    DeploymentQuota,
    InProcessThrottle,
    QuotaExceedsCapacity,
    QuotaExhausted,
    RedisThrottle,
    Room,
    Saturation,
    Throttle,
    Wait,
)

__all__ = [
    "Acquired",
    "DeploymentQuota",
    "InProcessRateLimiter",
    "InProcessThrottle",
    "QuotaExceedsCapacity",
    "QuotaExhausted",
    "RateLimited",
    "RateLimiter",
    "RateLimits",
    "RedisRateLimiter",
    "RedisThrottle",
    "Room",
    "Saturation",
    "Throttle",
    "Wait",
]
