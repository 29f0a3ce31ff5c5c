"""Robust calls: per-attempt timeouts, retries with backoff, a circuit breaker per deployment.

:class:`ResilientModel` wraps one provider. An attempt gets the smaller of the model's
``timeout_s`` and what is left of the request's deadline. It retries on 429 (honouring
``Retry-After``), 5xx, timeouts and connection errors with exponential backoff and full jitter,
never on other 4xx or on malformed answers (those go to the next candidate at once). Each
deployment has a :class:`CircuitBreaker`: after ``failures`` failures within ``window_s`` it
opens for ``open_s``, then lets one probe through. A stream is retried only before its first
token; after it, the error surfaces as :class:`StreamInterrupted` with the text received.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from majordome._errors import (
    CircuitOpenError,
    DeadlineExceeded,
    DeploymentAtQuota,
    MajordomeError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    StreamInterrupted,
)
from majordome._logging import get_logger
from majordome.models.base import (
    Attempt,
    CallContext,
    Model,
    ModelRequest,
    ModelResponse,
    StreamChunk,
    aclose_stream,
)
from majordome.models.catalogue import ModelSpec
from majordome.models.messages import Usage
from majordome.models.reasoning import ThinkSplitter, split_reasoning
from majordome.models.tokens import count_tokens, estimate_prompt_tokens

if TYPE_CHECKING:
    from majordome.quotas import Throttle

__all__ = ["BreakerPolicy", "CircuitBreaker", "ResilientModel", "RetryPolicy"]

_log = get_logger("majordome.calls")


class RetryPolicy(BaseModel):
    """How one deployment is retried before the next candidate is tried."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)
    hand_over_after_s: float = Field(default=1.0, ge=0)
    """A 429 asking to wait longer than this hands over to the next candidate, when there is one,
    instead of waiting on the same deployment (which is then avoided until its Retry-After)."""
    stream_idle_timeout_s: float = Field(default=30.0, gt=0)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff after the ``failures``-th failure."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1)))


class BreakerPolicy(BaseModel):
    """When a deployment's circuit opens, and for how long.

    It opens when, among the last ``sample_size`` calls that ended within ``window_s``, at least
    ``failures`` failed *and* failures are at least ``failure_ratio`` of them: three failures
    out of three open it, ten out of fifty do not.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    failures: int = Field(default=3, ge=1)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    sample_size: int = Field(default=50, ge=1)
    window_s: float = Field(default=300.0, gt=0)
    open_s: float = Field(default=60.0, ge=0)


class CircuitBreaker:
    """Closed → open → half-open (one probe) → closed or open again. Thread-safe, so the sync
    and async entry points can share it.

    :meth:`acquire` gives a ticket; the call reports back with it (:meth:`success`,
    :meth:`failure` or :meth:`release`). A ticket from before the last change of state is
    stale: a call that started before the circuit opened cannot close it by succeeding late,
    nor re-open it by failing late.
    """

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, bool]] = deque()  # (ended at, failed), at most sample_size
        self._recent_failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._generation = 0

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.policy.open_s:
                return "half-open"
            return "open"

    def reopens_in(self) -> float:
        """Seconds until a probe may go through (0 when closed, or when a probe is in flight)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.policy.open_s - (self._clock() - self._opened_at))

    def acquire(self) -> int | None:
        """A ticket when a call may go ahead; None when the circuit is open (or a probe is out)."""
        with self._lock:
            if self._opened_at is None:
                return self._generation
            if self._clock() - self._opened_at < self.policy.open_s or self._probing:
                return None
            self._probing = True
            return self._generation

    def release(self, ticket: int) -> None:
        """The call ended without a verdict (cancelled, or an error that says nothing of health)."""
        with self._lock:
            if ticket == self._generation:
                self._probing = False

    def success(self, ticket: int) -> None:
        with self._lock:
            if ticket != self._generation:
                return
            if self._opened_at is not None:  # the probe succeeded
                self._change(opened_at=None)
                return
            self._count(failed=False)

    def failure(self, ticket: int) -> None:
        with self._lock:
            if ticket != self._generation:
                return
            if self._opened_at is not None:  # the probe failed: open for another period
                self._change(opened_at=self._clock())
                return
            self._count(failed=True)
            failures, calls = self._recent_failures, len(self._recent)
            if failures >= self.policy.failures and failures >= self.policy.failure_ratio * calls:
                self._change(opened_at=self._clock())

    def _change(self, *, opened_at: float | None) -> None:
        self._opened_at = opened_at
        self._probing = False
        self._recent.clear()
        self._recent_failures = 0
        self._generation += 1

    def _count(self, *, failed: bool) -> None:
        now = self._clock()
        recent = self._recent
        while recent and (len(recent) >= self.policy.sample_size or now - recent[0][0] > self.policy.window_s):
            self._recent_failures -= recent.popleft()[1]
        recent.append((now, failed))
        self._recent_failures += failed


def _counts_against_breaker(error: ProviderError) -> bool:
    """5xx, timeouts, connection errors and malformed answers say a deployment is unhealthy;
    429 says it is busy (Retry-After and throttling deal with that), other 4xx say nothing."""
    if isinstance(error, ProviderRateLimited):
        return False
    return error.retryable or isinstance(error, ProviderResponseError)


class ResilientModel(Model):
    """A provider for one catalogue slot, with timeouts, retries, its breaker and accounting.

    ``spec`` gives the prices and the attempt timeout; it is the *effective* spec (a slot served
    by the local model costs what the local model costs). Every response leaving this layer
    has ``usage`` (estimated when the provider gave none), ``cost_usd`` and ``model`` set, and
    the reasoning trace split off.
    """

    def __init__(
        self,
        provider: Model,
        spec: ModelSpec,
        *,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] = asyncio.sleep,
        throttle: Throttle | None = None,
        quota_wait_s: float = 2.0,
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.retry = retry
        self.breaker = breaker
        self.throttle = throttle
        self.quota_wait_s = quota_wait_s
        self.cooling_until = 0.0  # time.monotonic() before which the provider asked not to be called (429)
        self.label = provider.label
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def aclose(self) -> None:
        await self.provider.aclose()

    # -- bookkeeping -------------------------------------------------------------------------

    def _fit(self, request: ModelRequest) -> ModelRequest:
        """The request with its output tokens capped at this model's maximum."""
        cap = self.spec.output_cap
        if cap and request.max_output_tokens > cap:
            return replace(request, max_output_tokens=cap)
        return request

    def _context(self, request: ModelRequest) -> CallContext:
        if request.context is None:  # used directly, outside Majordome: one model timeout
            return CallContext(
                trace_id="", deadline=time.monotonic() + self.spec.timeout_s, deadline_s=self.spec.timeout_s
            )
        return request.context

    def _attempt_timeout(self, ctx: CallContext) -> float:
        remaining = ctx.remaining()
        if remaining <= 0:
            raise DeadlineExceeded(ctx.deadline_s)
        return min(self.spec.timeout_s, remaining)

    def _check_breaker(self) -> int:
        """The breaker's ticket for this attempt, or :class:`CircuitOpenError` without a call."""
        ticket = self.breaker.acquire()
        if ticket is None:
            wait = self.breaker.reopens_in()
            raise CircuitOpenError(
                f"circuit open for {self.spec.deployment} (recent failures); retry in {wait:.0f} s",
                reopens_in=wait,
                model=self.spec.id,
                deployment=self.spec.deployment,
            )
        return ticket

    def _record(
        self, ctx: CallContext, number: int, started: float, error: BaseException | None, usage: Usage | None = None
    ) -> Attempt:
        attempt = Attempt(
            model=self.spec.id,
            deployment=self.spec.deployment,
            served_by=self.label,
            number=number,
            outcome="ok" if error is None else type(error).__name__,
            latency_ms=(time.monotonic() - started) * 1000,
            status_code=error.status_code if isinstance(error, ProviderHTTPError) else None,
            usage=usage,
            cost_usd=self.spec.cost_usd(usage.input_tokens, usage.output_tokens) if usage else 0.0,
        )
        ctx.attempts.append(attempt)
        if _log.isEnabledFor(20):  # logging.INFO
            _log.info(
                "model.call",
                trace_id=ctx.trace_id,
                model=attempt.model,
                deployment=attempt.deployment,
                served_by=attempt.served_by,
                attempt=number,
                outcome=attempt.outcome,
                status_code=attempt.status_code,
                latency_ms=round(attempt.latency_ms, 2),
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                usage_estimated=usage.estimated if usage else None,
                cost_usd=attempt.cost_usd,
                error=str(error) if error is not None else None,
            )
        return attempt

    def _usage(self, request: ModelRequest, reported: Usage | None, text: str, reasoning: str | None) -> Usage:
        if reported is not None:
            return reported
        output = count_tokens(text) + (count_tokens(reasoning) if reasoning else 0)
        return Usage(estimate_prompt_tokens(request.messages), output, estimated=True)

    async def _wait_before_retry(self, ctx: CallContext, error: ProviderError, failures: int) -> bool:
        """Sleep before the next attempt; False when no attempt should follow."""
        if not error.retryable or failures >= self.retry.max_attempts:
            return False
        delay = self.retry.backoff(failures, self._rng)
        if isinstance(error, ProviderRateLimited) and error.retry_after is not None:
            self.cooling_until = max(self.cooling_until, time.monotonic() + error.retry_after)
            if error.retry_after > self.retry.max_retry_after_s:
                return False
            if ctx.alternatives > 0 and error.retry_after > self.retry.hand_over_after_s:
                return False  # another candidate can answer now
            delay = max(delay, error.retry_after * (1 + 0.1 * self._rng.random()))
        if delay >= ctx.remaining():
            return False  # better to give the rest of the deadline to the next candidate
        await self._sleep(delay)  # type: ignore[misc]
        return True

    # -- complete ----------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        request = self._fit(request)
        ctx = self._context(request)
        number = 0
        while True:
            number += 1
            taken = await self._take_quota(ctx, request, number)
            timeout = self._attempt_timeout(ctx)
            ticket = self._check_breaker()
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    response = await self.provider.complete(request)
            except ProviderError as error:
                await self._settle_quota(taken, 0)
                self._fail(error, ticket)
                self._record(ctx, number, started, error)
                if not await self._wait_before_retry(ctx, error, number):
                    raise
                continue
            except TimeoutError as exc:
                timed_out = self._timeout_error(timeout)
                self._fail(timed_out, ticket)
                self._record(ctx, number, started, timed_out)
                if not await self._wait_before_retry(ctx, timed_out, number):
                    raise timed_out from exc
                continue
            except BaseException:
                self.breaker.release(ticket)
                raise
            self.breaker.success(ticket)
            text, reasoning = split_reasoning(response.text)
            response.reasoning = "\n".join(r for r in (response.reasoning, reasoning) if r) or None
            response.text = text
            response.usage = self._usage(request, response.usage, text, response.reasoning)
            response.model = self.spec.id
            attempt = self._record(ctx, number, started, None, response.usage)
            response.cost_usd = attempt.cost_usd
            await self._settle_quota(taken, response.usage.input_tokens + response.usage.output_tokens)
            return response

    async def _take_quota(self, ctx: CallContext, request: ModelRequest, number: int) -> int:
        """Take this call's estimated tokens from the deployment's quota (waiting at most
        ``quota_wait_s``, or the context's when it sets one, within the deadline); a deployment
        at its quota answers as a 429 would, so the fallback chain moves on instead of queueing
        into one. Returns the tokens taken."""
        if self.throttle is None:
            return 0
        from majordome.quotas import QuotaExhausted

        estimate = estimate_prompt_tokens(request.messages) + (request.max_output_tokens or 0)
        started = time.monotonic()
        wait = self.quota_wait_s if ctx.quota_wait_s is None else ctx.quota_wait_s
        deadline = started + max(0.0, min(wait, ctx.remaining()))
        try:
            grant = await self.throttle.acquire(self.spec.deployment, estimate, deadline)
        except QuotaExhausted as exc:
            error = DeploymentAtQuota(
                f"{self.spec.deployment} is at its quota (deployment_quotas)",
                retry_after=exc.retry_after_s,
                model=self.spec.id,
                deployment=self.spec.deployment,
            )
            self._record(ctx, number, started, error)  # the answer's attempts show the hand-over
            raise error from exc
        return grant.tokens

    async def _settle_quota(self, taken: int, used: int) -> None:
        """Settle the quota with what the call really used (0 gives the estimate back)."""
        if self.throttle is None or not taken:
            return
        with contextlib.suppress(MajordomeError):  # the buckets refill on their own; the answer stands
            await self.throttle.adjust(self.spec.deployment, used - taken)

    def _timeout_error(self, timeout: float) -> ProviderTimeout:
        return ProviderTimeout(
            f"{self.spec.deployment} gave no answer within {timeout:.3g} s",
            model=self.spec.id,
            deployment=self.spec.deployment,
        )

    def _fail(self, error: ProviderError, ticket: int) -> None:
        if _counts_against_breaker(error):
            self.breaker.failure(ticket)
        else:
            self.breaker.release(ticket)

    # -- stream ------------------------------------------------------------------------------

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        request = self._fit(request)
        ctx = self._context(request)
        number = 0
        while True:
            number += 1
            taken = await self._take_quota(ctx, request, number)
            timeout = self._attempt_timeout(ctx)
            ticket = self._check_breaker()
            started = time.monotonic()
            received: list[str] = []
            reasoning: list[str] = []
            splitter = ThinkSplitter()
            reported: Usage | None = None
            finish: str | None = None
            chunks = self.provider.stream(request)
            try:
                try:
                    while True:
                        wait = timeout if not received and not reasoning else self.retry.stream_idle_timeout_s
                        wait = min(wait, ctx.remaining())
                        try:
                            async with asyncio.timeout(max(wait, 0)):
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            raise self._timeout_error(wait) from None
                        if chunk.usage is not None:
                            reported = chunk.usage
                        finish = chunk.finish_reason or finish
                        text, thought = splitter.feed(chunk.text)
                        thought = chunk.reasoning + thought
                        if text or thought:
                            received.append(text)
                            reasoning.append(thought)
                            yield StreamChunk(text=text, reasoning=thought)
                finally:
                    await aclose_stream(chunks)
            except ProviderError as error:
                if received or reasoning:
                    self._fail(error, ticket)
                    interrupted = StreamInterrupted(
                        f"stream from {self.spec.deployment} broke after its first token: {error}",
                        partial_text="".join(received),
                        model=self.spec.id,
                        deployment=self.spec.deployment,
                    )
                    self._record(ctx, number, started, interrupted)
                    raise interrupted from error
                await self._settle_quota(taken, 0)
                self._fail(error, ticket)
                self._record(ctx, number, started, error)
                if not await self._wait_before_retry(ctx, error, number):
                    raise
                continue
            except BaseException:
                self.breaker.release(ticket)
                raise
            self.breaker.success(ticket)
            tail_text, tail_reasoning = splitter.finish()
            text = "".join(received) + tail_text
            thought = "".join(reasoning) + tail_reasoning
            usage = self._usage(request, reported, text, thought or None)
            self._record(ctx, number, started, None, usage)
            await self._settle_quota(taken, usage.input_tokens + usage.output_tokens)
            yield StreamChunk(text=tail_text, reasoning=tail_reasoning, finish_reason=finish, usage=usage)
            return
