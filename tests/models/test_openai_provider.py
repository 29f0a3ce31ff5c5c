"""What only OpenAICompatibleModel (openai SDK over its aiohttp transport, or an injected httpx
client) does: its headers on the wire, the placeholder key, a dropped connection the SDK calls a
timeout, Azure OpenAI mode, and, through respx, Retry-After forms, reasoning_content, malformed
bodies and httpx's transport errors. The contract it shares with the Azure AI Inference provider
is in ``test_http_providers.py``."""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
import respx

from majordome import (
    Message,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
)
from majordome.models import BreakerPolicy, CircuitBreaker, ModelSpec, ResilientModel, RetryPolicy
from majordome.models.base import CallContext, ModelRequest
from majordome.models.openai_compat import OpenAICompatibleModel
from majordome.testing import StubLLMServer, StubReply

KEY = "sk-test-openai-7d3e1f0a"
DEPLOYMENT = "deepseek-chat"


def _request(text: str = "Hello?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_output_tokens=64, **kwargs)


@pytest.fixture
async def model(stub: StubLLMServer) -> AsyncIterator[OpenAICompatibleModel]:
    provider = OpenAICompatibleModel(
        model_id="deepseek-v3", deployment=DEPLOYMENT, base_url=stub.openai_base_url, api_key=KEY
    )
    yield provider
    await provider.aclose()


def _assert_safe(error: BaseException, *endpoints: str) -> None:
    """Neither the key nor an endpoint leaks into an error message."""
    message = str(error)
    for secret in (KEY, *endpoints):
        assert secret not in message


# -- against the stub --------------------------------------------------------------------------


async def test_headers_on_the_wire(model: OpenAICompatibleModel, stub: StubLLMServer) -> None:
    await model.complete(_request())

    [sent] = stub.requests
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-stainless-retry-count"] == "0"  # the SDK's own retries are off


async def test_without_key_a_placeholder_is_sent(stub: StubLLMServer) -> None:
    provider = OpenAICompatibleModel(model_id="m", deployment="local-vllm", base_url=stub.openai_base_url)
    try:
        assert (await provider.complete(_request())).text == "Hello from the stub."
    finally:
        await provider.aclose()
    assert stub.requests[0].headers["authorization"] == "Bearer unused"


@pytest.mark.parametrize("kind", ["complete", "stream"])
async def test_dropped_connection_is_a_connection_error_not_a_timeout(
    model: OpenAICompatibleModel, stub: StubLLMServer, kind: str
) -> None:
    """The SDK's aiohttp transport turns a server disconnect into APITimeoutError; the provider
    reports what happened: a connection error, not a timeout."""
    stub.enqueue(StubReply.reset())

    with pytest.raises(ProviderConnectionError) as caught:
        if kind == "complete":
            await model.complete(_request())
        else:
            async for _chunk in model.stream(_request()):
                pass

    assert isinstance(caught.value.__cause__, openai.APITimeoutError)  # what the SDK called it
    assert "dropped" in str(caught.value)
    assert caught.value.retryable


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
        model_id="gpt-4o",
        deployment="gpt-4o-prod",
        base_url=stub.url,
        azure_api_version="2024-10-21",
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
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": DEPLOYMENT,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text, **message}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": DEPLOYMENT,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@pytest.fixture
async def mocked() -> AsyncIterator[tuple[OpenAICompatibleModel, respx.MockRouter]]:
    provider = OpenAICompatibleModel(
        model_id="deepseek-v3",
        deployment=DEPLOYMENT,
        base_url=BASE,
        api_key=KEY,
        http_client_factory=lambda: httpx.AsyncClient(),
    )
    with respx.mock(assert_all_mocked=True) as router:
        yield provider, router
    await provider.aclose()


def _spec() -> ModelSpec:
    return ModelSpec(
        id="deepseek-v3",
        display_name="DeepSeek-V3",
        api="openai",
        deployment=DEPLOYMENT,
        context_window=8000,
        max_output_tokens=1000,
        price_input_per_mtok=1.0,
        price_output_per_mtok=2.0,
    )


async def test_respx_503_is_retried_then_200(mocked: tuple[OpenAICompatibleModel, respx.MockRouter]) -> None:
    provider, router = mocked
    route = router.post(ROUTE).mock(
        side_effect=[
            httpx.Response(503, json={"error": {"message": "overloaded"}}),
            httpx.Response(200, json=_completion("after a retry")),
        ]
    )
    resilient = ResilientModel(
        provider,
        _spec(),
        retry=RetryPolicy(backoff_base_s=0.001),
        breaker=CircuitBreaker(BreakerPolicy()),
        rng=random.Random(0),
    )
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
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": DEPLOYMENT,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
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
    router.post(ROUTE).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
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
