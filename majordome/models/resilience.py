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
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from majordome._errors import (
    CircuitOpenError,
    DeadlineExceeded,
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

__all__ = ["BreakerPolicy", "CircuitBreaker", "ResilientModel", "RetryPolicy"]

_log = get_logger("majordome.calls")


class RetryPolicy(BaseModel):
    """How one deployment is retried before the next candidate is tried."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)
    stream_idle_timeout_s: float = Field(default=30.0, gt=0)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff after the ``failures``-th failure."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1)))


class BreakerPolicy(BaseModel):
    """When a deployment's circuit opens, and for how long."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    failures: int = Field(default=3, ge=1)
    window_s: float = Field(default=300.0, gt=0)
    open_s: float = Field(default=60.0, ge=0)


class CircuitBreaker:
    """Closed → open after ``failures`` failures in ``window_s`` → half-open after ``open_s``:
    one probe call; its success closes the circuit, its failure opens it again. Thread-safe, so
    the sync and async entry points can share it."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.policy.open_s:
                return "half-open"
            return "open"

    def acquire(self) -> float | None:
        """None when a call may go ahead; otherwise the seconds until the circuit may reopen."""
        with self._lock:
            if self._opened_at is None:
                return None
            waited = self._clock() - self._opened_at
            if waited < self.policy.open_s:
                return self.policy.open_s - waited
            if self._probing:
                return 0.0  # a probe is in flight; others wait for its verdict
            self._probing = True
            return None

    def release(self) -> None:
        """The call ended without a verdict (cancelled, or failed for a reason that doesn't count)."""
        with self._lock:
            self._probing = False

    def success(self) -> None:
        with self._lock:
            self._failures.clear()
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            now = self._clock()
            if self._opened_at is not None:  # the probe failed
                self._opened_at = now
                self._probing = False
                return
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self.policy.window_s:
                self._failures.popleft()
            if len(self._failures) >= self.policy.failures:
                self._opened_at = now
                self._failures.clear()


def _counts_against_breaker(error: ProviderError) -> bool:
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
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.retry = retry
        self.breaker = breaker
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

    def _check_breaker(self) -> None:
        wait = self.breaker.acquire()
        if wait is not None:
            raise CircuitOpenError(
                f"circuit open for {self.spec.deployment} (recent failures); retry in {wait:.0f} s",
                reopens_in=wait,
                model=self.spec.id,
                deployment=self.spec.deployment,
            )

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
            if error.retry_after > self.retry.max_retry_after_s:
                return False
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
            timeout = self._attempt_timeout(ctx)
            self._check_breaker()
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    response = await self.provider.complete(request)
            except ProviderError as error:
                self._fail(error)
                self._record(ctx, number, started, error)
                if not await self._wait_before_retry(ctx, error, number):
                    raise
                continue
            except TimeoutError as exc:
                timed_out = self._timeout_error(timeout)
                self._fail(timed_out)
                self._record(ctx, number, started, timed_out)
                if not await self._wait_before_retry(ctx, timed_out, number):
                    raise timed_out from exc
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.success()
            text, reasoning = split_reasoning(response.text)
            response.reasoning = "\n".join(r for r in (response.reasoning, reasoning) if r) or None
            response.text = text
            response.usage = self._usage(request, response.usage, text, response.reasoning)
            response.model = self.spec.id
            attempt = self._record(ctx, number, started, None, response.usage)
            response.cost_usd = attempt.cost_usd
            return response

    def _timeout_error(self, timeout: float) -> ProviderTimeout:
        return ProviderTimeout(
            f"{self.spec.deployment} gave no answer within {timeout:.3g} s",
            model=self.spec.id,
            deployment=self.spec.deployment,
        )

    def _fail(self, error: ProviderError) -> None:
        if isinstance(error, CircuitOpenError):
            return
        if _counts_against_breaker(error):
            self.breaker.failure()
        else:
            self.breaker.release()

    # -- stream ------------------------------------------------------------------------------

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        request = self._fit(request)
        ctx = self._context(request)
        number = 0
        while True:
            number += 1
            timeout = self._attempt_timeout(ctx)
            self._check_breaker()
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
                    self._fail(error)
                    interrupted = StreamInterrupted(
                        f"stream from {self.spec.deployment} broke after its first token: {error}",
                        partial_text="".join(received),
                        model=self.spec.id,
                        deployment=self.spec.deployment,
                    )
                    self._record(ctx, number, started, interrupted)
                    raise interrupted from error
                self._fail(error)
                self._record(ctx, number, started, error)
                if not await self._wait_before_retry(ctx, error, number):
                    raise
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.success()
            tail_text, tail_reasoning = splitter.finish()
            text = "".join(received) + tail_text
            thought = "".join(reasoning) + tail_reasoning
            usage = self._usage(request, reported, text, thought or None)
            self._record(ctx, number, started, None, usage)
            yield StreamChunk(text=tail_text, reasoning=tail_reasoning, finish_reason=finish, usage=usage)
            return

