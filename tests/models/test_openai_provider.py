"""OpenAICompatibleModel (openai SDK over httpx2, or an injected httpx client) against a real
loopback stub and against respx mocks: the request on the wire, parsing, error translation,
Azure OpenAI mode, and the whole stack."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from majordome import (
    AllCandidatesFailed,
    DeadlineExceeded,
    ImagePart,
    Message,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    StreamInterrupted,
    TextPart,
)
from majordome.models import BreakerPolicy, CircuitBreaker, ModelSpec, ResilientModel, RetryPolicy
from majordome.models.base import CallContext, ModelRequest, StreamChunk
from majordome.models.messages import AudioPart
from majordome.models.openai_compat import OpenAICompatibleModel
from majordome.testing import StubLLMServer, StubReply

KEY = "sk-test-openai-7d3e1f0a"
DEPLOYMENT = "deepseek-chat"
PNG = "data:image/png;base64,iVBORw0KGgo="
WAV = "UklGRiQAAABXQVZF"


def _request(text: str = "Hello?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_output_tokens=64, **kwargs)


@pytest.fixture
async def model(stub: StubLLMServer) -> AsyncIterator[OpenAICompatibleModel]:
    provider = OpenAICompatibleModel(model_id="deepseek-v3", deployment=DEPLOYMENT, base_url=stub.openai_base_url,
                                     api_key=KEY)
    yield provider
    await provider.aclose()


def _assert_safe(error: BaseException, *endpoints: str) -> None:
    """Neither the key nor an endpoint leaks into an error message."""
    message = str(error)
    for secret in (KEY, *endpoints):
        assert secret not in message


def _stub_secrets(stub: StubLLMServer) -> tuple[str, ...]:
    return stub.openai_base_url, stub.url, f"{stub.host}:{stub.port}"


# -- against the stub --------------------------------------------------------------------------


async def test_complete_parses_text_usage_and_finish(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("Hello from OpenAI.", usage=(9, 4)))

    response = await model.complete(_request())

    assert response.text == "Hello from OpenAI."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.estimated) == (9, 4, False)
    assert response.finish_reason == "stop"
    assert response.served_by == "openai:deepseek-chat"


async def test_request_on_the_wire(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    await model.complete(_request("Ping", temperature=0.7, json_mode=True, stop=("###",)))

    [sent] = stub.requests
    assert sent.method == "POST"
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-stainless-retry-count"] == "0"  # the SDK's own retries are off
    assert sent.body == {
        "model": DEPLOYMENT,
        "messages": [{"role": "user", "content": "Ping"}],
        "max_tokens": 64,
        "temperature": 0.7,
        "response_format": {"type": "json_object"},
        "stop": ["###"],
    }


async def test_multimodal_parts_are_encoded(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    parts = [TextPart(text="Describe both."), ImagePart(url=PNG, detail="high"), AudioPart(data=WAV, format="wav")]
    await model.complete(ModelRequest(messages=[Message(role="user", content=parts)], max_output_tokens=16))

    assert stub.requests[0].body["messages"][0]["content"] == [
        {"type": "text", "text": "Describe both."},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
    ]


async def test_without_key_a_placeholder_is_sent(stub: StubLLMServer) -> None:
    provider = OpenAICompatibleModel(model_id="m", deployment="local-vllm", base_url=stub.openai_base_url)
    try:
        assert (await provider.complete(_request())).text == "Hello from the stub."
    finally:
        await provider.aclose()
    assert stub.requests[0].headers["authorization"] == "Bearer unused"


async def test_stream_yields_text_then_usage(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("one two three", usage=(7, 3)))

    chunks = [chunk async for chunk in model.stream(_request())]

    assert [c.text for c in chunks if c.text] == ["one", " two", " three"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (7, 3)
    body = stub.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_one_client_per_event_loop(stub: StubLLMServer) -> None:
    provider = OpenAICompatibleModel(model_id="m", deployment="d", base_url=stub.openai_base_url, api_key=KEY)

    async def call() -> str:
        try:
            return (await provider.complete(_request())).text
        finally:
            await provider.aclose()

    stub.enqueue(StubReply.ok("loop one"), StubReply.ok("loop two"))
    assert [asyncio.run(call()), asyncio.run(call())] == ["loop one", "loop two"]


async def test_429_becomes_rate_limited_with_retry_after(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(429, "slow down", retry_after=4))

    with pytest.raises(ProviderRateLimited) as caught:
        await model.complete(_request())

    assert caught.value.retry_after == 4
    assert caught.value.retryable
    assert (caught.value.model, caught.value.deployment) == ("deepseek-v3", DEPLOYMENT)
    assert "slow down" in str(caught.value)
    assert caught.value.__cause__ is not None
    _assert_safe(caught.value, *_stub_secrets(stub))


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
async def test_http_errors(model: OpenAICompatibleModel, stub: StubLLMServer, status: int, retryable: bool) -> None:
    stub.enqueue(StubReply.http_error(status, "stub says no"))

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert type(caught.value) is ProviderHTTPError
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable
    _assert_safe(caught.value, *_stub_secrets(stub))


@pytest.mark.parametrize(
    ("reply", "expected", "retryable"),
    [
        (StubReply.broken_json(), ProviderResponseError, False),
        (StubReply.reset(), ProviderConnectionError, True),
        (StubReply.cut_stream(), ProviderConnectionError, True),  # a truncated JSON body
    ],
    ids=["broken-json", "reset", "truncated-body"],
)
async def test_transport_and_format_errors(
    model: OpenAICompatibleModel, stub: StubLLMServer, reply: StubReply, expected: type[ProviderError], retryable: bool
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))

    with pytest.raises(expected) as caught:
        await model.complete(_request())

    assert caught.value.retryable is retryable
    _assert_safe(caught.value, *_stub_secrets(stub))
    assert (await model.complete(_request())).text == "recovered"


async def test_error_detail_echoing_secrets_is_redacted(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(401, f"Incorrect API key {KEY} for {stub.openai_base_url}/chat/completions"))

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert "Incorrect API key" in str(caught.value)
    _assert_safe(caught.value, stub.openai_base_url)


async def test_stream_cut_midway_raises_during_iteration(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.cut_stream("alpha beta gamma delta", after_chunks=2))
    received: list[str] = []

    with pytest.raises(ProviderConnectionError) as caught:
        async for chunk in model.stream(_request()):
            received.append(chunk.text)

    assert received == ["alpha", " beta"]
    _assert_safe(caught.value, *_stub_secrets(stub))


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (StubReply.http_error(429, retry_after=3), ProviderRateLimited),
        (StubReply.http_error(500), ProviderHTTPError),
        (StubReply.broken_json(), ProviderResponseError),
        (StubReply.reset(), ProviderConnectionError),
    ],
    ids=["429", "500", "broken-json", "reset"],
)
async def test_stream_errors_before_the_first_chunk(
    model: OpenAICompatibleModel, stub: StubLLMServer, reply: StubReply, expected: type[ProviderError]
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))
    received: list[StreamChunk] = []

    with pytest.raises(expected):
        async for chunk in model.stream(_request()):
            received.append(chunk)

    assert not [c for c in received if c.text]
    assert "".join([c.text async for c in model.stream(_request())]) == "recovered"


# -- Azure OpenAI mode -------------------------------------------------------------------------


async def test_azure_openai_mode_uses_deployment_path_version_and_api_key(stub: StubLLMServer) -> None:
    provider = OpenAICompatibleModel(
        model_id="gpt-4o", deployment="gpt-4o-prod", base_url=stub.url, api_key=KEY, azure_api_version="2024-10-21"
    )
    try:
        response = await provider.complete(_request())
    finally:
        await provider.aclose()

    assert response.served_by == "azure-openai:gpt-4o-prod"
    [sent] = stub.requests
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert "api-version=2024-10-21" in sent.query
    assert sent.headers["api-key"] == KEY


async def test_azure_openai_mode_with_a_token_provider(stub: StubLLMServer) -> None:
    async def token() -> str:
        return "entra-token-xyz"

    provider = OpenAICompatibleModel(
        model_id="gpt-4o", deployment="gpt-4o-prod", base_url=stub.url, azure_api_version="2024-10-21",
        token_provider=token,
    )
    try:
        await provider.complete(_request())
    finally:
        await provider.aclose()
    assert stub.requests[0].headers["authorization"] == "Bearer entra-token-xyz"
    assert "api-key" not in stub.requests[0].headers


# -- with respx (an injected httpx client) -----------------------------------------------------

BASE = "https://llm.example.test/v1"
ROUTE = f"{BASE}/chat/completions"


def _completion(text: str | None = "hey", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": DEPLOYMENT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, **message},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": DEPLOYMENT,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.fixture
async def mocked() -> AsyncIterator[tuple[OpenAICompatibleModel, respx.MockRouter]]:
    provider = OpenAICompatibleModel(
        model_id="deepseek-v3", deployment=DEPLOYMENT, base_url=BASE, api_key=KEY,
        http_client_factory=lambda: httpx.AsyncClient(),
    )
    with respx.mock(assert_all_mocked=True) as router:
        yield provider, router
    await provider.aclose()


def _spec() -> ModelSpec:
    return ModelSpec(id="deepseek-v3", display_name="DeepSeek-V3", api="openai", deployment=DEPLOYMENT,
                     context_window=8000, max_output_tokens=1000, price_input_per_mtok=1.0, price_output_per_mtok=2.0)


async def test_respx_503_is_retried_then_200(mocked: tuple[OpenAICompatibleModel, respx.MockRouter]) -> None:
    provider, router = mocked
    route = router.post(ROUTE).mock(side_effect=[
        httpx.Response(503, json={"error": {"message": "overloaded"}}),
        httpx.Response(200, json=_completion("after a retry")),
    ])
    resilient = ResilientModel(provider, _spec(), retry=RetryPolicy(backoff_base_s=0.001),
                               breaker=CircuitBreaker(BreakerPolicy()), rng=random.Random(0))
    context = CallContext(trace_id="t", deadline=time.monotonic() + 10, deadline_s=10)

    response = await resilient.complete(
        ModelRequest(messages=[Message(role="user", content="Hello?")], max_output_tokens=64, context=context)
    )

    assert response.text == "after a retry"
    assert [(a.outcome, a.status_code) for a in context.attempts] == [("ProviderHTTPError", 503), ("ok", None)]
    assert response.cost_usd == pytest.approx((3 * 1.0 + 1 * 2.0) / 1e6)
    assert route.call_count == 2
    sent = route.calls[0].request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content)["model"] == DEPLOYMENT


async def test_respx_503_is_a_retryable_http_error(mocked: tuple[OpenAICompatibleModel, respx.MockRouter]) -> None:
    provider, router = mocked
    router.post(ROUTE).mock(return_value=httpx.Response(503, text="<html>Service Unavailable</html>"))

    with pytest.raises(ProviderHTTPError) as caught:
        await provider.complete(_request())

    assert caught.value.status_code == 503 and caught.value.retryable
    _assert_safe(caught.value, BASE, "llm.example.test")


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "<an HTTP date 30 s from now>"}, 30.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
    ids=["retry-after-ms", "retry-after", "http-date", "garbage", "none"],
)
async def test_respx_429_retry_after_forms(
    mocked: tuple[OpenAICompatibleModel, respx.MockRouter], headers: dict[str, str], seconds: float | None
) -> None:
    provider, router = mocked
    if headers.get("Retry-After", "").startswith("<"):
        headers = {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)}
    router.post(ROUTE).mock(return_value=httpx.Response(429, headers=headers, json={"error": {"message": "quota"}}))

    with pytest.raises(ProviderRateLimited) as caught:
        await provider.complete(_request())

    if seconds is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(seconds, abs=1.5)  # an HTTP date has 1 s resolution
    assert "quota" in str(caught.value)


async def test_respx_streaming_sse(mocked: tuple[OpenAICompatibleModel, respx.MockRouter]) -> None:
    provider, router = mocked
    body = _sse(
        _chunk({"role": "assistant", "reasoning_content": "Think first."}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}, finish="stop"),
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": DEPLOYMENT, "choices": [],
         "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
        "[DONE]",
    )
    route = router.post(ROUTE).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )

    chunks = [chunk async for chunk in provider.stream(_request())]

    assert "".join(c.text for c in chunks) == "Hello"
    assert "".join(c.reasoning for c in chunks) == "Think first."
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert json.loads(route.calls[0].request.content)["stream"] is True


async def test_respx_reasoning_content_is_kept(mocked: tuple[OpenAICompatibleModel, respx.MockRouter]) -> None:
    provider, router = mocked
    router.post(ROUTE).mock(return_value=httpx.Response(200, json=_completion("42", reasoning_content="6 x 7")))

    response = await provider.complete(_request())

    assert (response.text, response.reasoning) == ("42", "6 x 7")


@pytest.mark.parametrize(
    "payload",
    [{"choices": []}, {}, [], "just a string", _completion(None)],
    ids=["no-choices", "empty-object", "array", "string", "null-content"],
)
async def test_respx_malformed_2xx_is_a_response_error(
    mocked: tuple[OpenAICompatibleModel, respx.MockRouter], payload: Any
) -> None:
    provider, router = mocked
    router.post(ROUTE).mock(return_value=httpx.Response(200, json=payload))

    with pytest.raises(ProviderResponseError) as caught:
        await provider.complete(_request())

    assert not caught.value.retryable


async def test_respx_malformed_stream_event_is_a_response_error(
    mocked: tuple[OpenAICompatibleModel, respx.MockRouter],
) -> None:
    provider, router = mocked
    body = _sse(_chunk({"content": "ok so far"}), "[1, 2]")
    router.post(ROUTE).mock(return_value=httpx.Response(200, headers={"content-type": "text/event-stream"},
                                                        content=body))
    received: list[str] = []

    with pytest.raises(ProviderResponseError):
        async for chunk in provider.stream(_request()):
            received.append(chunk.text)

    assert received == ["ok so far"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), ProviderConnectionError),
        (httpx.ReadTimeout("slow"), ProviderTimeout),
        (httpx.RemoteProtocolError("peer closed"), ProviderConnectionError),
    ],
    ids=["connect", "read-timeout", "protocol"],
)
async def test_respx_transport_errors(
    mocked: tuple[OpenAICompatibleModel, respx.MockRouter], exc: Exception, expected: type[ProviderError]
) -> None:
    provider, router = mocked
    router.post(ROUTE).mock(side_effect=exc)

    with pytest.raises(expected) as caught:
        await provider.complete(_request())

    assert caught.value.retryable
    _assert_safe(caught.value, BASE, "llm.example.test")


# -- the whole stack, sync and async -----------------------------------------------------------

API = "openai"
ASK = {"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"}


def test_stack_answers(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("ask", ASK, (StubReply.ok("Hi there.", usage=(20, 3)),))

    assert outcome.text == "Hi there."
    assert outcome.attempts == [("deepseek-v3", "ok", None)]
    answer = outcome.answer
    assert answer.served_by == "openai:DeepSeek-V3" and not answer.substituted
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (20, 3)
    assert stack.server.requests[-1].path == "/v1/chat/completions"
    assert stack.server.requests[-1].body["model"] == "DeepSeek-V3"


def test_stack_stream_matches_ask(make_stack: Any) -> None:
    stack = make_stack(API)
    streamed = stack.both("stream", ASK, (StubReply.ok("same words either way", usage=(8, 4)),))
    asked = stack.both("ask", ASK, (StubReply.ok("same words either way", usage=(8, 4)),))

    assert streamed.deltas == ["same", " words", " either", " way"]
    assert streamed.text == asked.text == "same words either way"
    assert streamed.answer.usage == asked.answer.usage
    assert streamed.attempts == asked.attempts


def test_stack_retries_429_and_500_then_succeeds(make_stack: Any) -> None:
    replies = (StubReply.http_error(429, retry_after=0.05), StubReply.http_error(500), StubReply.ok("Third time."))
    stack = make_stack(API)

    for kind in ("ask", "stream"):
        outcome = stack.both(kind, ASK, replies)
        assert outcome.text == "Third time."
        assert outcome.attempts == [
            ("deepseek-v3", "ProviderRateLimited", 429),
            ("deepseek-v3", "ProviderHTTPError", 500),
            ("deepseek-v3", "ok", None),
        ]
        assert outcome.elapsed_s >= 0.05


def test_stack_retry_after_beyond_the_deadline_falls_back_at_once(make_stack: Any) -> None:
    stack = make_stack(API)
    request = {**ASK, "deadline_s": 2.0}
    outcome = stack.both("ask", request, (StubReply.http_error(429, retry_after=10), StubReply.ok("Mistral here.")))
    assert outcome.text == "Mistral here."
    assert outcome.attempts == [("deepseek-v3", "ProviderRateLimited", 429), ("mistral-large", "ok", None)]
    assert outcome.elapsed_s < 1.5  # nobody slept on the Retry-After


def test_stack_falls_back_when_a_model_keeps_failing(make_stack: Any) -> None:
    stack = make_stack(API)
    replies = (*[StubReply.http_error(503)] * 3, StubReply.ok("Mistral here."))

    for kind in ("ask", "stream"):
        outcome = stack.both(kind, ASK, replies)
        assert outcome.text == "Mistral here."
        assert outcome.attempts == [*[("deepseek-v3", "ProviderHTTPError", 503)] * 3, ("mistral-large", "ok", None)]
        assert outcome.answer.served_by == "openai:Mistral-Large-2411"
    assert stack.server.requests[-1].body["model"] == "Mistral-Large-2411"


def test_stack_broken_json_falls_back_at_once(make_stack: Any) -> None:
    stack = make_stack(API)
    for kind in ("ask", "stream"):
        outcome = stack.both(kind, ASK, (StubReply.broken_json(), StubReply.ok("Clean answer.")))
        assert outcome.text == "Clean answer."
        assert outcome.attempts == [("deepseek-v3", "ProviderResponseError", None), ("mistral-large", "ok", None)]


def test_stack_every_candidate_failing_lists_the_causes(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("stream", ASK, (StubReply.http_error(400, "bad"), StubReply.http_error(400, "bad")))
    assert isinstance(outcome.error, AllCandidatesFailed)
    assert outcome.attempts == [("deepseek-v3", "ProviderHTTPError", 400), ("mistral-large", "ProviderHTTPError", 400)]
    assert stack.endpoint not in str(outcome.error)


def test_stack_respects_the_deadline_when_the_server_is_slow(make_stack: Any) -> None:
    stack = make_stack(API)
    request = {**ASK, "deadline_s": 0.3}
    for kind in ("ask", "stream"):
        outcome = stack.both(kind, request, (StubReply.slow(1.5),))
        assert isinstance(outcome.error, DeadlineExceeded)
        assert outcome.attempts == [("deepseek-v3", "ProviderTimeout", None)]
        assert outcome.elapsed_s < 1.2


def test_stack_stream_cut_before_first_token_is_retried(make_stack: Any) -> None:
    stack = make_stack(API)
    replies = (StubReply.cut_stream("never seen", after_chunks=0), StubReply.ok("Full answer."))
    outcome = stack.both("stream", ASK, replies)
    assert outcome.deltas == ["Full", " answer."]
    assert outcome.attempts == [("deepseek-v3", "ProviderConnectionError", None), ("deepseek-v3", "ok", None)]


def test_stack_stream_cut_after_first_token_raises_with_partial_text(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("stream", ASK, (StubReply.cut_stream("one two three four", after_chunks=2),))
    assert isinstance(outcome.error, StreamInterrupted)
    assert outcome.error.partial_text == "one two"
    assert outcome.deltas == ["one", " two"]
    assert stack.server.calls == 2  # once per mode: no retry, no fallback after the first token
