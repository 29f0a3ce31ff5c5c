"""The token-bucket engine shared by the deployment throttle and the caller rate limits.

A bucket holds at most ``capacity`` units and refills continuously at ``rate`` units a second.
One operation touches several buckets at once, all or nothing (a request takes from its
deployment's request *and* token buckets; a caller from its user *and* tenant buckets):

* ``take``: take ``amount`` from every bucket if every one holds enough, else take nothing and
  say how long until all of them would (the longest refill). With ``max_wait`` > 0 a take that
  would fit within that many seconds is made at once, into the future: the levels go below zero
  and the caller proceeds after ``wait_s`` (a reservation, as in GCRA). Later takers see the
  deeper level and queue behind it, so waiters are served in the order they came, and no window
  admits more than a plain bucket would;
* ``give``: subtract ``amount`` unconditionally (negative gives back), the level kept at most
  ``capacity`` and, from a give, no deeper than ``-capacity`` (or the reservations already
  there): a call that used more than it reserved leaves the bucket in debt, never for long;
* ``peek``: read the levels.

:class:`LocalBuckets` does this under a lock in this process; :data:`BUCKETS_LUA` does it in one
Redis script, timed by the server's ``TIME`` so processes with skewed clocks agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["BUCKETS_LUA", "BucketOp", "BucketSpec", "LocalBuckets", "Outcome"]

BucketOp = Literal["take", "give", "peek"]


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket of one operation: its key, size, refill per second, and the amount at stake."""

    key: str
    capacity: float
    rate: float
    amount: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation did: ``taken``; ``wait_s`` until a refused take would succeed; the
    levels after the operation, in the order of the specs."""

    taken: bool
    wait_s: float  # taken: how long to wait before proceeding (a reservation); else until it would fit
    levels: tuple[float, ...]


def _wait(spec: BucketSpec, level: float) -> float:
    if level >= spec.amount:
        return 0.0
    return (spec.amount - level) / spec.rate if spec.rate > 0 else float("inf")


class LocalBuckets:
    """Buckets in this process. Thread-safe; ``clock`` in seconds (monotonic by default)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key -> (level, at)

    def _level(self, spec: BucketSpec, now: float) -> float:
        state = self._state.get(spec.key)
        if state is None:
            return spec.capacity
        level, at = state
        return min(spec.capacity, level + max(0.0, now - at) * spec.rate)

    def run(self, op: BucketOp, specs: Sequence[BucketSpec], max_wait: float = 0.0) -> Outcome:
        with self._lock:
            now = self._clock()
            levels = [self._level(spec, now) for spec in specs]
            if op == "peek":
                return Outcome(True, 0.0, tuple(levels))
            wait = (
                max((_wait(s, lv) for s, lv in zip(specs, levels, strict=True)), default=0.0) if op == "take" else 0.0
            )
            if wait > max_wait:
                return Outcome(False, wait, tuple(levels))
            after = []
            for spec, level in zip(specs, levels, strict=True):
                new = min(spec.capacity, level - spec.amount)
                if op == "give":
                    new = max(new, min(level, -spec.capacity))
                self._state[spec.key] = (new, now)
                after.append(new)
            return Outcome(True, wait, tuple(after))


# KEYS: one hash {level, s, us} per bucket. ARGV[1]: op; ARGV[2]: key expiry in ms; ARGV[3]: the
# longest wait a take may reserve (s); then, per key, capacity, rate per second, amount. Returns
# {taken, wait_s, level...}, numbers as strings (Lua numbers returned bare are truncated to
# integers). The time of the last write is kept as TIME's
# two integers: one float of microseconds since 1970 would lose digits in tostring.
BUCKETS_LUA = """
local t = redis.call('TIME')
local now_s, now_us = tonumber(t[1]), tonumber(t[2])
local op, ttl, max_wait = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS
local caps, rates, amounts, levels = {}, {}, {}, {}
local wait = 0
for i = 1, n do
  local cap, rate, amount = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  caps[i], rates[i], amounts[i] = cap, rate, amount
  local h = redis.call('HMGET', KEYS[i], 'level', 's', 'us')
  local level = cap
  if h[1] then
    local elapsed = (now_s - tonumber(h[2])) + (now_us - tonumber(h[3])) / 1000000
    level = tonumber(h[1])
    if elapsed > 0 then level = math.min(cap, level + elapsed * rate) end
  end
  levels[i] = level
  if op == 'take' and level < amount then
    local w
    if rate > 0 then w = (amount - level) / rate else w = 1e18 end
    if w > wait then wait = w end
  end
end
local taken = 1
if op == 'take' and wait > max_wait then taken = 0 end
if op ~= 'peek' and taken == 1 then
  for i = 1, n do
    local level = levels[i] - amounts[i]
    if level > caps[i] then level = caps[i] end
    if op == 'give' then
      local floor = math.min(levels[i], -caps[i])
      if level < floor then level = floor end
    end
    levels[i] = level
    redis.call('HSET', KEYS[i], 'level', string.format('%.17g', level), 's', t[1], 'us', t[2])
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
local out = {taken, string.format('%.17g', wait)}
for i = 1, n do out[#out + 1] = string.format('%.17g', levels[i]) end
return out
"""
