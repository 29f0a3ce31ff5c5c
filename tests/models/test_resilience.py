from __future__ import annotations

import asyncio
import random
import time

import pytest

from majordome import (
    AllCandidatesFailed,
    BreakerPolicy,
    Catalogue,
    CircuitOpenError,
    DeadlineExceeded,
    Message,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    RetryPolicy,
    StreamInterrupted,
    Usage,
)
from majordome.models import CallContext, CircuitBreaker, FallbackModel, ModelRequest, ResilientModel
from majordome.testing import Reply, ScriptedModel

SPEC = Catalogue.default()["deepseek-v3"]
R1 = Catalogue.default()["deepseek-r1"]


def http(status: int) -> ProviderHTTPError:
    return ProviderHTTPError(f"HTTP {status}", status_code=status, model="deepseek-v3", deployment="DeepSeek-V3")


def limited(retry_after: float | None) -> ProviderRateLimited:
    return ProviderRateLimited("429", retry_after=retry_after, model="deepseek-v3", deployment="DeepSeek-V3")


class Sleeps:
    """Records the backoff sleeps instead of waiting them."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(deadline_s: float = 30.0, max_output_tokens: int = 100) -> ModelRequest:
    context = CallContext(trace_id="t", deadline=time.monotonic() + deadline_s, deadline_s=deadline_s)
    return ModelRequest(
        messages=[Message(role="user", content="hi")], max_output_tokens=max_output_tokens, context=context
    )


def resilient(
    model: ScriptedModel,
    *,
    spec=SPEC,
    retry: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
    sleeps: Sleeps | None = None,
) -> ResilientModel:
    return ResilientModel(
        model,
        spec,
        retry=retry or RetryPolicy(max_attempts=3, backoff_base_s=0.5, backoff_max_s=8),
        breaker=breaker or CircuitBreaker(BreakerPolicy(failures=100)),
        rng=random.Random(1),
        sleep=sleeps or Sleeps(),
    )


async def test_retries_5xx_then_succeeds_and_records_every_attempt() -> None:
    sleeps = Sleeps()
    model = resilient(ScriptedModel(http(500), http(503), Reply("ok", usage=Usage(12, 3))), sleeps=sleeps)
    req = request()
    response = await model.complete(req)
    assert response.text == "ok"
    assert response.model == "deepseek-v3"
    assert response.usage == Usage(12, 3)
    assert response.cost_usd == pytest.approx(SPEC.cost_usd(12, 3))
    assert [a.outcome for a in req.context.attempts] == ["ProviderHTTPError", "ProviderHTTPError", "ok"]
    assert [a.status_code for a in req.context.attempts] == [500, 503, None]
    # full jitter: each sleep within [0, base * 2^(n-1)]
    assert len(sleeps.calls) == 2
    assert 0 <= sleeps.calls[0] <= 0.5 and 0 <= sleeps.calls[1] <= 1.0


async def test_never_retries_other_4xx() -> None:
    scripted = ScriptedModel(http(400), default="never reached")
    with pytest.raises(ProviderHTTPError) as info:
        await resilient(scripted).complete(request())
    assert info.value.status_code == 400
    assert len(scripted.calls) == 1


async def test_malformed_answer_is_not_retried_on_the_same_deployment() -> None:
    scripted = ScriptedModel(ProviderResponseError("broken JSON"), default="never reached")
    with pytest.raises(ProviderResponseError):
        await resilient(scripted).complete(request())
    assert len(scripted.calls) == 1


async def test_honours_retry_after() -> None:
    sleeps = Sleeps()
    model = resilient(ScriptedModel(limited(2.5), "ok"), sleeps=sleeps)
    assert (await model.complete(request())).text == "ok"
    assert 2.5 <= sleeps.calls[0] <= 2.5 * 1.1


async def test_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    sleeps = Sleeps()
    scripted = ScriptedModel(limited(20.0), default="never reached")
    with pytest.raises(ProviderRateLimited):
        await resilient(scripted, sleeps=sleeps).complete(request(deadline_s=5))
    assert sleeps.calls == [] and len(scripted.calls) == 1


async def test_gives_up_after_max_attempts() -> None:
    scripted = ScriptedModel(default=Reply(error=http(502)))
    with pytest.raises(ProviderHTTPError):
        await resilient(scripted, retry=RetryPolicy(max_attempts=4, backoff_base_s=0)).complete(request())
    assert len(scripted.calls) == 4


async def test_attempt_timeout_then_retry() -> None:
    spec = SPEC.model_copy(update={"timeout_s": 0.05})
    scripted = ScriptedModel(Reply("late", delay_s=1.0), "in time")
    req = request()
    response = await resilient(scripted, spec=spec).complete(req)
    assert response.text == "in time"
    assert req.context.attempts[0].outcome == "ProviderTimeout"


async def test_the_deadline_bounds_the_attempt_timeout() -> None:
    scripted = ScriptedModel(default=Reply("late", delay_s=5.0))
    started = time.monotonic()
    with pytest.raises((ProviderTimeout, DeadlineExceeded)):
        await resilient(scripted).complete(request(deadline_s=0.1))
    assert time.monotonic() - started < 1.0


async def test_output_tokens_are_capped_at_the_models_maximum() -> None:
    scripted = ScriptedModel("ok")
    await resilient(scripted).complete(request(max_output_tokens=10**6))
    assert scripted.calls[0].max_output_tokens == SPEC.output_cap


async def test_usage_is_estimated_when_the_provider_gives_none() -> None:
    response = await resilient(ScriptedModel(Reply("one two three", usage=None))).complete(request())
    assert response.usage is not None and response.usage.estimated
    assert response.usage.output_tokens == 3
    assert response.usage.input_tokens > 0


async def test_reasoning_trace_is_split_off_the_text() -> None:
    scripted = ScriptedModel(Reply("The answer is 84.", reasoning="12 * 7 = 84"))
    response = await resilient(scripted, spec=R1).complete(request())
    assert response.text == "The answer is 84."
    assert response.reasoning == "12 * 7 = 84"


# -- circuit breaker ---------------------------------------------------------------------------


def test_breaker_opens_after_failures_in_window_then_lets_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=3, window_s=300, open_s=60), clock=clock)
    for _ in range(2):
        ticket = breaker.acquire()
        assert ticket is not None
        breaker.failure(ticket)
    assert breaker.state == "closed"
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    assert breaker.state == "open"
    assert breaker.acquire() is None and breaker.reopens_in() == pytest.approx(60)
    clock.now += 61
    assert breaker.state == "half-open"
    probe = breaker.acquire()
    assert probe is not None  # the probe
    assert breaker.acquire() is None  # others wait for its verdict
    breaker.failure(probe)  # the probe failed: open again for a full period
    assert breaker.state == "open" and breaker.reopens_in() == pytest.approx(60)
    clock.now += 61
    probe = breaker.acquire()
    assert probe is not None
    breaker.success(probe)
    assert breaker.state == "closed"
    assert breaker.acquire() is not None


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=3, window_s=300, open_s=60), clock=clock)
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    clock.now += 301
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    assert breaker.state == "closed"


def test_a_few_failures_among_many_successes_do_not_open_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=3, failure_ratio=0.5, sample_size=50, window_s=300), clock=clock)
    for i in range(100):  # 20 % failures, spread over time
        clock.now += 1
        ticket = breaker.acquire()
        assert ticket is not None
        (breaker.failure if i % 5 == 0 else breaker.success)(ticket)
    assert breaker.state == "closed"
    down = 0
    while breaker.state == "closed":  # then the deployment goes down: it opens once failures dominate
        clock.now += 1
        breaker.failure(breaker.acquire())  # type: ignore[arg-type]
        down += 1
    assert down <= 25  # half of the last 50 calls


def test_results_of_calls_started_before_a_change_are_ignored() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=2, open_s=10), clock=clock)
    slow_ok, slow_bad = breaker.acquire(), breaker.acquire()
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    assert breaker.state == "open"
    breaker.success(slow_ok)  # type: ignore[arg-type]  # started before it opened: cannot close it
    assert breaker.state == "open"
    clock.now += 11
    probe = breaker.acquire()
    breaker.failure(slow_bad)  # type: ignore[arg-type]  # nor fail the probe's turn
    assert breaker.state == "half-open"
    breaker.success(probe)  # type: ignore[arg-type]
    assert breaker.state == "closed"


async def test_open_breaker_refuses_without_calling() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures=3, window_s=300, open_s=60))
    scripted = ScriptedModel(default=Reply(error=http(500)))
    model = resilient(scripted, breaker=breaker, retry=RetryPolicy(max_attempts=3, backoff_base_s=0))
    with pytest.raises(ProviderHTTPError):
        await model.complete(request())
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        await model.complete(request())
    assert info.value.reopens_in > 50
    assert len(scripted.calls) == 3


@pytest.mark.parametrize("error", [http(400), http(401), limited(0.0)])
async def test_client_errors_and_rate_limits_do_not_open_the_breaker(error: ProviderHTTPError) -> None:
    breaker = CircuitBreaker(BreakerPolicy(failures=2))
    model = resilient(ScriptedModel(default=Reply(error=error)), breaker=breaker, retry=RetryPolicy(max_attempts=1))
    for _ in range(3):
        with pytest.raises(ProviderHTTPError):
            await model.complete(request())
    assert breaker.state == "closed"


# -- streams -----------------------------------------------------------------------------------


async def collect(model: ResilientModel | FallbackModel, req: ModelRequest) -> tuple[str, list]:
    chunks = [chunk async for chunk in model.stream(req)]
    return "".join(c.text for c in chunks), chunks


async def test_stream_failing_before_first_token_is_retried() -> None:
    scripted = ScriptedModel(Reply(error=http(503)), Reply("all good here", usage=Usage(5, 3)))
    req = request()
    text, chunks = await collect(resilient(scripted), req)
    assert text == "all good here"
    assert chunks[-1].usage == Usage(5, 3)
    assert [a.outcome for a in req.context.attempts] == ["ProviderHTTPError", "ok"]


async def test_stream_failing_after_first_token_surfaces_with_partial_text() -> None:
    scripted = ScriptedModel(Reply("one two three four", fail_after_chunks=2, error=http(500)), default="unused")
    received = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in resilient(scripted).stream(request()):
            received.append(chunk.text)
    assert info.value.partial_text == "one two"
    assert "".join(received) == "one two"
    assert len(scripted.calls) == 1


async def test_stream_idle_timeout_after_first_token() -> None:
    scripted = ScriptedModel(Reply("a b c", chunk_delay_s=0.3))
    model = resilient(scripted, retry=RetryPolicy(stream_idle_timeout_s=0.1))
    with pytest.raises(StreamInterrupted):
        await collect(model, request())


async def test_stream_splits_reasoning_across_chunks() -> None:
    scripted = ScriptedModel(Reply("", chunks=["<th", "ink>step 1", " step 2</thi", "nk>\n\nFinal", " answer"]))
    chunks = [c async for c in resilient(scripted, spec=R1).stream(request())]
    assert "".join(c.text for c in chunks) == "Final answer"
    assert "".join(c.reasoning for c in chunks) == "step 1 step 2"


# -- fallback chain ----------------------------------------------------------------------------


async def test_fallback_moves_on_and_reports_every_cause() -> None:
    first = resilient(
        ScriptedModel(default=Reply(error=http(500))), retry=RetryPolicy(max_attempts=2, backoff_base_s=0)
    )
    second = resilient(ScriptedModel(ProviderResponseError("broken")), spec=Catalogue.default()["mistral-large"])
    third = resilient(ScriptedModel("third answers"), spec=Catalogue.default()["llama-3.3-70b"])
    chain = FallbackModel([("deepseek-v3", first), ("mistral-large", second), ("llama-3.3-70b", third)])
    req = request()
    response = await chain.complete(req)
    assert response.text == "third answers" and response.model == "llama-3.3-70b"
    assert [a.model for a in req.context.attempts] == ["deepseek-v3", "deepseek-v3", "mistral-large", "llama-3.3-70b"]


async def test_all_candidates_failed_carries_each_cause() -> None:
    chain = FallbackModel(
        [
            ("deepseek-v3", resilient(ScriptedModel(http(400)))),
            (
                "mistral-large",
                resilient(ScriptedModel(ProviderResponseError("bad")), spec=Catalogue.default()["mistral-large"]),
            ),
        ]
    )
    with pytest.raises(AllCandidatesFailed) as info:
        await chain.complete(request())
    assert [name for name, _ in info.value.causes] == ["deepseek-v3", "mistral-large"]
    assert isinstance(info.value.causes[0][1], ProviderHTTPError)
    assert isinstance(info.value.causes[1][1], ProviderResponseError)


async def test_deadline_ends_the_chain_with_deadline_exceeded() -> None:
    slow = Reply("late", delay_s=2.0)
    chain = FallbackModel(
        [
            ("deepseek-v3", resilient(ScriptedModel(default=slow))),
            ("mistral-large", resilient(ScriptedModel(default=slow), spec=Catalogue.default()["mistral-large"])),
        ]
    )
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await chain.complete(request(deadline_s=0.2))
    assert time.monotonic() - started < 1.0
    assert info.value.causes and isinstance(info.value.causes[0][1], ProviderTimeout)


async def test_stream_falls_back_only_before_the_first_chunk() -> None:
    chain = FallbackModel(
        [
            ("deepseek-v3", resilient(ScriptedModel(http(400)))),
            ("mistral-large", resilient(ScriptedModel("from the fallback"), spec=Catalogue.default()["mistral-large"])),
        ]
    )
    text, _ = await collect(chain, request())
    assert text == "from the fallback"

    broken_midway = Reply("one two three", fail_after_chunks=1, error=http(500))
    chain = FallbackModel(
        [
            ("deepseek-v3", resilient(ScriptedModel(broken_midway))),
            ("mistral-large", resilient(ScriptedModel("never"), spec=Catalogue.default()["mistral-large"])),
        ]
    )
    with pytest.raises(StreamInterrupted) as info:
        await collect(chain, request())
    assert info.value.partial_text == "one"


async def test_cancellation_releases_a_half_open_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerPolicy(failures=1, open_s=10), clock=clock)
    breaker.failure(breaker.acquire())  # type: ignore[arg-type]
    clock.now += 11
    model = resilient(ScriptedModel(Reply("slow", delay_s=5)), breaker=breaker)
    task = asyncio.create_task(model.complete(request()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.acquire() is not None  # the next caller may probe
