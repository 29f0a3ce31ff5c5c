"""Per-tenant spending caps: a daily and a monthly cap in USD, shared by every worker.

A request *reserves* its estimated cost before the call; the reservation is checked against both
windows (the UTC calendar day and the UTC calendar month) in one atomic step: it is refused with
:class:`~majordome.BudgetExceeded` when ``spent + reserved + amount`` would pass either cap. After
the call the reservation is *settled* with the actual cost (which may exceed the estimate: money
spent is recorded, never refused after the fact) or *released* when no call was made. The first
of ``settle``/``release`` wins; repeating either is a no-op, so a retried settle never counts twice.

A reservation never settled (its worker crashed) expires after ``reservation_ttl_s``: its amount
returns to the tenant, and a settle arriving later (up to a day after the expiry) still records
the spend. A reservation is charged to the windows it was made in, even when it settles after
midnight.

Two back ends behind one interface:

* :class:`InProcessBudgets` — one worker process (asyncio- and thread-safe).
* :class:`RedisBudgets` — every worker sharing a Redis server; each operation is one Lua script,
  so concurrent workers never overspend. Window keys expire on their own (day keys about two
  days after their last write, month keys about 62 days). Workers pass their own clock, so their
  clocks must agree (NTP) to within what a window boundary can tolerate.

A budget check that cannot be made (Redis unreachable) fails closed with
:class:`BudgetUnavailable`, a :class:`~majordome.MajordomeError`: spending without a check would
let a fault turn into an unbounded bill.

Amounts are kept as whole nano-dollars (1e-9 USD), so sums are exact and both back ends agree.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from majordome._errors import BadRequestError, BudgetExceeded, ConfigurationError, MajordomeError
from majordome._logging import get_logger
from majordome.feedback._budgets_lua import FINISH, RESERVE, USAGE

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DAY_WINDOW_TTL_S",
    "LATE_SETTLE_S",
    "MONTH_WINDOW_TTL_S",
    "BudgetCaps",
    "BudgetLedger",
    "BudgetStatus",
    "BudgetUnavailable",
    "InProcessBudgets",
    "RedisBudgets",
    "Reservation",
]

_log = get_logger("majordome.budgets")

_NANOS_PER_USD = 1_000_000_000
_DAY_S = 86_400
# Redis window keys live this long after their last write (a reservation made before midnight can
# still settle into yesterday's window).
DAY_WINDOW_TTL_S = 2 * _DAY_S
MONTH_WINDOW_TTL_S = 62 * _DAY_S
# How long an expired reservation is remembered, so that a late settle still records its spend.
LATE_SETTLE_S = _DAY_S


class BudgetUnavailable(MajordomeError):
    """The budget could not be checked or updated (its store is unreachable or failed).

    Raised instead of letting a request through unchecked: a budget fails closed. ``tenant`` is
    the tenant concerned; the store's own error is the ``__cause__``.
    """

    def __init__(self, message: str, *, tenant: str = "") -> None:
        self.tenant = tenant
        super().__init__(message)


# -- values --------------------------------------------------------------------------------------


def _check_cap(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"BudgetCaps.{name} must be a finite number >= 0 or None, got {value!r}")


@dataclass(frozen=True)
class BudgetCaps:
    """A tenant's caps in USD; ``None`` means no cap on that window."""

    daily_usd: float | None = None
    monthly_usd: float | None = None

    def __post_init__(self) -> None:
        _check_cap("daily_usd", self.daily_usd)
        _check_cap("monthly_usd", self.monthly_usd)


@dataclass(frozen=True)
class Reservation:
    """An amount held against a tenant's ``day`` (``YYYY-MM-DD``) and ``month`` (``YYYY-MM``) windows
    until ``expires_at`` (the ledger's clock, seconds since the epoch)."""

    tenant: str
    reservation_id: str
    amount_usd: float
    day: str
    month: str
    expires_at: float


@dataclass(frozen=True)
class BudgetStatus:
    """A tenant's current windows: caps, settled spend and amounts reserved by calls in flight."""

    tenant: str
    daily_cap: float | None
    daily_spent: float
    daily_reserved: float
    monthly_cap: float | None
    monthly_spent: float
    monthly_reserved: float

    def _windows(self) -> list[tuple[float, float]]:
        """(remaining, cap) of each capped window."""
        windows = []
        for cap, spent, reserved in (
            (self.daily_cap, self.daily_spent, self.daily_reserved),
            (self.monthly_cap, self.monthly_spent, self.monthly_reserved),
        ):
            if cap is not None:
                windows.append((max(0.0, cap - spent - reserved), cap))
        return windows

    @property
    def remaining_usd(self) -> float | None:
        """What a new request may still reserve (the tightest capped window); None if uncapped."""
        windows = self._windows()
        return min(remaining for remaining, _ in windows) if windows else None

    @property
    def remaining_share(self) -> float | None:
        """``remaining_usd`` as a share (0-1) of the tightest window's cap; None if uncapped."""
        shares = [(remaining, remaining / cap if cap > 0 else 0.0) for remaining, cap in self._windows()]
        return min(shares)[1] if shares else None


class _Usage(NamedTuple):
    """Nano-dollars in a tenant's day and month windows."""

    day_spent: int
    day_reserved: int
    month_spent: int
    month_reserved: int


def _check_tenant(tenant: object, error: type[MajordomeError] = BadRequestError) -> str:
    if not isinstance(tenant, str) or not tenant.strip():
        raise error(f"a budget tenant must be a non-empty string, got {tenant!r}")
    return tenant


def _nanos(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise BadRequestError(f"{what} must be a finite number of USD >= 0, got {value!r}")
    return round(value * _NANOS_PER_USD)


_DAY_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_FORMAT = re.compile(r"\d{4}-\d{2}")


def _check_reservation(reservation: object, operation: str) -> Reservation:
    if not isinstance(reservation, Reservation):
        raise BadRequestError(f"{operation} needs a Reservation from reserve(), got {reservation!r}")
    _check_tenant(reservation.tenant)
    if not (_DAY_FORMAT.fullmatch(reservation.day) and _MONTH_FORMAT.fullmatch(reservation.month)):
        raise BadRequestError(f"{operation}: {reservation!r} was not made by reserve() (its windows are malformed)")
    return reservation


def _usd(nanos: int) -> float:
    return nanos / _NANOS_PER_USD


def _windows_at(now: float) -> tuple[str, str]:
    moment = time.gmtime(now)
    return time.strftime("%Y-%m-%d", moment), time.strftime("%Y-%m", moment)


# -- the interface ---------------------------------------------------------------------------------


class BudgetLedger(ABC):
    """Per-tenant caps over UTC days and months: reserve before a call, settle or release after.

    ``caps`` maps tenants to their caps; other tenants get ``default`` (no cap when None). An
    uncapped tenant's spend is still recorded, so :meth:`status` reports it.
    """

    def __init__(
        self,
        caps: Mapping[str, BudgetCaps] | None = None,
        default: BudgetCaps | None = None,
        reservation_ttl_s: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._caps: dict[str, BudgetCaps] = {}
        for tenant, tenant_caps in (caps or {}).items():
            if not isinstance(tenant_caps, BudgetCaps):
                raise ConfigurationError(f"the caps of tenant {tenant!r} must be BudgetCaps, got {tenant_caps!r}")
            self._caps[_check_tenant(tenant, ConfigurationError)] = tenant_caps
        if default is not None and not isinstance(default, BudgetCaps):
            raise ConfigurationError(f"the default caps must be BudgetCaps or None, got {default!r}")
        self._default = default or BudgetCaps()
        if (
            isinstance(reservation_ttl_s, bool)
            or not isinstance(reservation_ttl_s, int | float)
            or not math.isfinite(reservation_ttl_s)
            or reservation_ttl_s <= 0
        ):
            raise ConfigurationError(f"reservation_ttl_s must be a finite number > 0, got {reservation_ttl_s!r}")
        self._reservation_ttl_s = float(reservation_ttl_s)
        self._clock = clock

    def caps_for(self, tenant: str) -> BudgetCaps:
        """The caps that apply to ``tenant``."""
        return self._caps.get(_check_tenant(tenant), self._default)

    async def reserve(self, tenant: str, amount_usd: float) -> Reservation:
        """Hold ``amount_usd`` against both of ``tenant``'s current windows, or raise
        :class:`~majordome.BudgetExceeded` (nothing held) when either cap would be passed."""
        tenant = _check_tenant(tenant)
        amount = _nanos(amount_usd, "amount_usd")
        caps = self.caps_for(tenant)
        now = self._clock()
        day, month = _windows_at(now)
        reservation = Reservation(
            tenant=tenant,
            reservation_id=uuid.uuid4().hex,
            amount_usd=float(amount_usd),
            day=day,
            month=month,
            expires_at=now + self._reservation_ttl_s,
        )
        day_cap = None if caps.daily_usd is None else _nanos(caps.daily_usd, "daily cap")
        month_cap = None if caps.monthly_usd is None else _nanos(caps.monthly_usd, "monthly cap")
        accepted, usage = await self._reserve(reservation, amount, day_cap, month_cap, now)
        if not accepted:
            raise self._refusal(reservation, amount, caps, usage)
        return reservation

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace the reservation by the actual cost (recorded even when it exceeds the estimate).
        A no-op when the reservation was already settled or released."""
        await self._finish(_check_reservation(reservation, "settle"), _nanos(actual_usd, "actual_usd"))

    async def release(self, reservation: Reservation) -> None:
        """Give the reservation back: the call did not happen, or failed without cost.
        A no-op when the reservation was already settled or released."""
        await self._finish(_check_reservation(reservation, "release"), 0)

    async def status(self, tenant: str) -> BudgetStatus:
        """The tenant's current day and month: caps, spend, and what calls in flight hold."""
        tenant = _check_tenant(tenant)
        caps = self.caps_for(tenant)
        now = self._clock()
        day, month = _windows_at(now)
        usage = await self._usage(tenant, day, month, now)
        return BudgetStatus(
            tenant=tenant,
            daily_cap=caps.daily_usd,
            daily_spent=_usd(usage.day_spent),
            daily_reserved=_usd(usage.day_reserved),
            monthly_cap=caps.monthly_usd,
            monthly_spent=_usd(usage.month_spent),
            monthly_reserved=_usd(usage.month_reserved),
        )

    async def close(self) -> None:  # noqa: B027 - a back end without resources needs nothing here
        """Release the back end's resources (connections)."""

    async def __aenter__(self) -> BudgetLedger:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- what a back end implements (amounts in nano-dollars) --

    @abstractmethod
    async def _reserve(
        self, reservation: Reservation, amount: int, day_cap: int | None, month_cap: int | None, now: float
    ) -> tuple[bool, _Usage]:
        """Atomically: return expired reservations; then, unless ``usage + amount`` passes a cap,
        hold ``amount`` in both windows. Returns (held, usage seen before holding)."""

    @abstractmethod
    async def _finish(self, reservation: Reservation, actual: int) -> None:
        """Atomically: drop the reservation (if still held) and add ``actual`` to its windows'
        spend; nothing when it was finished before."""

    @abstractmethod
    async def _usage(self, tenant: str, day: str, month: str, now: float) -> _Usage:
        """Return expired reservations, then read the tenant's windows."""

    # -- shared --

    def _refusal(self, reservation: Reservation, amount: int, caps: BudgetCaps, usage: _Usage) -> BudgetExceeded:
        windows = []
        remaining: list[float] = []
        for name, cap, spent, held in (
            ("daily", caps.daily_usd, usage.day_spent, usage.day_reserved),
            ("monthly", caps.monthly_usd, usage.month_spent, usage.month_reserved),
        ):
            if cap is None:
                continue
            left = max(0, _nanos(cap, "cap") - spent - held)
            remaining.append(_usd(left))
            if spent + held + amount > _nanos(cap, "cap"):
                windows.append(
                    f"{name} cap {cap:.6f} USD ({_usd(spent):.6f} spent, {_usd(held):.6f} reserved, "
                    f"{_usd(left):.6f} left)"
                )
        remaining_usd = min(remaining) if remaining else None
        _log.info(
            "budget.refused",
            tenant=reservation.tenant,
            amount_usd=reservation.amount_usd,
            remaining_usd=remaining_usd,
            day=reservation.day,
            month=reservation.month,
        )
        return BudgetExceeded(
            f"tenant {reservation.tenant!r} cannot spend {reservation.amount_usd:.6f} USD more: " + "; ".join(windows),
            tenant=reservation.tenant,
            remaining_usd=remaining_usd,
        )


# -- one process -----------------------------------------------------------------------------------


@dataclass
class _Held:
    tenant: str
    amount: int
    day: str
    month: str
    expires_at: float


class InProcessBudgets(BudgetLedger):
    """The ledger of a single worker process, in memory (asyncio- and thread-safe).

    Windows older than yesterday and last month are dropped as days pass.
    """

    def __init__(
        self,
        caps: Mapping[str, BudgetCaps] | None = None,
        default: BudgetCaps | None = None,
        reservation_ttl_s: float = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(caps, default, reservation_ttl_s, clock)
        self._lock = threading.Lock()
        # (tenant, "day" | "month", window) -> [spent, reserved]
        self._windows: dict[tuple[str, str, str], list[int]] = {}
        self._pending: dict[str, _Held] = {}
        self._expiries: list[tuple[float, str]] = []  # heap of (expires_at, reservation id)
        self._expired: dict[str, _Held] = {}  # expired, remembered for a late settle
        self._forget: list[tuple[float, str]] = []  # heap of (when to forget, reservation id)
        self._pruned_day = ""

    def _window(self, tenant: str, kind: str, window: str) -> list[int]:
        key = (tenant, kind, window)
        counters = self._windows.get(key)
        if counters is None:
            counters = self._windows[key] = [0, 0]
        return counters

    def _unhold(self, held: _Held) -> None:
        for kind, window in (("day", held.day), ("month", held.month)):
            counters = self._windows.get((held.tenant, kind, window))
            if counters is not None:
                counters[1] -= held.amount

    def _expire(self, now: float) -> None:
        """Return the amounts of reservations past their expiry; forget those expired long ago."""
        while self._expiries and self._expiries[0][0] <= now:
            _, reservation_id = heapq.heappop(self._expiries)
            held = self._pending.pop(reservation_id, None)
            if held is not None:
                self._unhold(held)
                self._expired[reservation_id] = held
                heapq.heappush(self._forget, (now + LATE_SETTLE_S, reservation_id))
        while self._forget and self._forget[0][0] <= now:
            self._expired.pop(heapq.heappop(self._forget)[1], None)
        day, _ = _windows_at(now)
        if day != self._pruned_day:
            # A day later: drop windows no reservation can still settle into (older than
            # yesterday, older than last month).
            self._pruned_day = day
            oldest_day, _ = _windows_at(now - _DAY_S)
            today = time.gmtime(now)
            oldest_month = (
                f"{today.tm_year:04d}-{today.tm_mon - 1:02d}" if today.tm_mon > 1 else f"{today.tm_year - 1:04d}-12"
            )
            for key in [
                key
                for key in self._windows
                if (key[1] == "day" and key[2] < oldest_day) or (key[1] == "month" and key[2] < oldest_month)
            ]:
                del self._windows[key]

    def _usage_locked(self, tenant: str, day: str, month: str) -> _Usage:
        day_counters = self._windows.get((tenant, "day", day), [0, 0])
        month_counters = self._windows.get((tenant, "month", month), [0, 0])
        return _Usage(day_counters[0], day_counters[1], month_counters[0], month_counters[1])

    async def _reserve(
        self, reservation: Reservation, amount: int, day_cap: int | None, month_cap: int | None, now: float
    ) -> tuple[bool, _Usage]:
        with self._lock:
            self._expire(now)
            usage = self._usage_locked(reservation.tenant, reservation.day, reservation.month)
            if (day_cap is not None and usage.day_spent + usage.day_reserved + amount > day_cap) or (
                month_cap is not None and usage.month_spent + usage.month_reserved + amount > month_cap
            ):
                return False, usage
            self._window(reservation.tenant, "day", reservation.day)[1] += amount
            self._window(reservation.tenant, "month", reservation.month)[1] += amount
            self._pending[reservation.reservation_id] = _Held(
                reservation.tenant, amount, reservation.day, reservation.month, reservation.expires_at
            )
            heapq.heappush(self._expiries, (reservation.expires_at, reservation.reservation_id))
            return True, usage

    async def _finish(self, reservation: Reservation, actual: int) -> None:
        with self._lock:
            held = self._pending.pop(reservation.reservation_id, None)
            if held is not None:
                self._unhold(held)
                if len(self._expiries) > 2 * len(self._pending) + 1024:
                    # Settled reservations linger in the heap until their expiry: drop them.
                    self._expiries = [entry for entry in self._expiries if entry[1] in self._pending]
                    heapq.heapify(self._expiries)
            else:
                held = self._expired.pop(reservation.reservation_id, None)
                if held is None:
                    return  # finished before (or unknown to this ledger)
            self._window(held.tenant, "day", held.day)[0] += actual
            self._window(held.tenant, "month", held.month)[0] += actual

    async def _usage(self, tenant: str, day: str, month: str, now: float) -> _Usage:
        with self._lock:
            self._expire(now)
            return self._usage_locked(tenant, day, month)


# -- Redis -----------------------------------------------------------------------------------------


def _usage_of(values: Any) -> _Usage:
    day_spent, day_reserved, month_spent, month_reserved = (int(value) for value in values)
    return _Usage(day_spent, day_reserved, month_spent, month_reserved)


class RedisBudgets(BudgetLedger):
    """The ledger shared by every worker through Redis (``redis.asyncio``; ``majordome[redis]``).

    Give ``url`` (``redis://``, ``rediss://`` or ``unix://``) or an existing ``client`` (which
    :meth:`close` then leaves open). ``prefix`` namespaces the keys; ``timeout_s`` bounds each
    Redis call (and the wait for one of the ``max_connections`` pooled connections), after which
    the operation fails with :class:`BudgetUnavailable`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "majordome:budget:",
        caps: Mapping[str, BudgetCaps] | None = None,
        default: BudgetCaps | None = None,
        reservation_ttl_s: float = 600,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        super().__init__(caps, default, reservation_ttl_s, clock)
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import RedisError
        except ImportError as error:
            raise ConfigurationError("RedisBudgets needs the redis package: pip install 'majordome[redis]'") from error
        if (url is None) == (client is None):
            raise ConfigurationError("RedisBudgets needs exactly one of url= and client=")
        if not isinstance(prefix, str):
            raise ConfigurationError(f"RedisBudgets prefix must be a string, got {prefix!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ConfigurationError(f"RedisBudgets timeout_s must be a number > 0, got {timeout_s!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigurationError(f"RedisBudgets max_connections must be an integer >= 1, got {max_connections!r}")
        self._redis_errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        if client is None:
            if not isinstance(url, str) or not url:
                raise ConfigurationError("RedisBudgets url must be a non-empty string")
            try:
                # A burst of requests waits for a pooled connection (up to timeout_s) rather than
                # failing. Two quick retries on a broken connection (every script is safe to
                # repeat), not redis-py's ten: a budget check that cannot be made must fail fast.
                pool = BlockingConnectionPool.from_url(
                    url,
                    max_connections=max_connections,
                    timeout=timeout_s,
                    socket_timeout=timeout_s,
                    socket_connect_timeout=timeout_s,
                    retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
                )
            except ValueError as error:
                # redis-py's message names the accepted schemes; the URL (maybe with a password) is not repeated.
                raise ConfigurationError(f"RedisBudgets: invalid Redis URL: {error}") from None
            client = Redis.from_pool(pool)
            self._owns_client = True
        else:
            self._owns_client = False
        self._client: Redis = client
        self._prefix = prefix
        self._reserve_script: AsyncScript = client.register_script(RESERVE)
        self._finish_script: AsyncScript = client.register_script(FINISH)
        self._usage_script: AsyncScript = client.register_script(USAGE)
        self._bookkeeping_ttl = str(int(MONTH_WINDOW_TTL_S + self._reservation_ttl_s))

    def _base(self, tenant: str) -> str:
        return f"{self._prefix}{{{quote(tenant, safe='')}}}"

    async def _run(self, script: AsyncScript, tenant: str, keys: list[str], args: list[str]) -> Any:
        # EVALSHA, and EVAL (loading the script) when the server does not know it yet.
        try:
            return await script(keys=keys, args=args)
        except self._redis_errors as error:
            _log.warning("budget.unavailable", tenant=tenant, error=type(error).__name__)
            raise BudgetUnavailable(
                f"the budget of tenant {tenant!r} could not be checked: Redis failed ({type(error).__name__}: {error})",
                tenant=tenant,
            ) from error

    async def _reserve(
        self, reservation: Reservation, amount: int, day_cap: int | None, month_cap: int | None, now: float
    ) -> tuple[bool, _Usage]:
        base = self._base(reservation.tenant)
        reply = await self._run(
            self._reserve_script,
            reservation.tenant,
            [
                f"{base}:day:{reservation.day}",
                f"{base}:month:{reservation.month}",
                f"{base}:pending",
                f"{base}:records",
            ],
            [
                repr(now),
                str(amount),
                str(-1 if day_cap is None else day_cap),
                str(-1 if month_cap is None else month_cap),
                reservation.reservation_id,
                repr(reservation.expires_at),
                str(DAY_WINDOW_TTL_S),
                str(MONTH_WINDOW_TTL_S),
                self._bookkeeping_ttl,
                base,
                reservation.day,
                reservation.month,
                repr(now + LATE_SETTLE_S),
            ],
        )
        return int(reply[0]) == 1, _usage_of(reply[1:])

    async def _finish(self, reservation: Reservation, actual: int) -> None:
        base = self._base(reservation.tenant)
        await self._run(
            self._finish_script,
            reservation.tenant,
            [
                f"{base}:day:{reservation.day}",
                f"{base}:month:{reservation.month}",
                f"{base}:pending",
                f"{base}:records",
                f"{base}:expired",
            ],
            [reservation.reservation_id, str(actual), str(DAY_WINDOW_TTL_S), str(MONTH_WINDOW_TTL_S)],
        )

    async def _usage(self, tenant: str, day: str, month: str, now: float) -> _Usage:
        base = self._base(tenant)
        reply = await self._run(
            self._usage_script,
            tenant,
            [f"{base}:day:{day}", f"{base}:month:{month}"],
            [repr(now), base, repr(now + LATE_SETTLE_S), self._bookkeeping_ttl],
        )
        return _usage_of(reply)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
