"""AzureAIInferenceModel (azure-ai-inference SDK over aiohttp) against a real loopback stub:
the request on the wire, parsing, error translation, Entra ID tokens, and the whole stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AzureKeyCredential

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
    StreamInterrupted,
    TextPart,
)
from majordome.models.azure import AzureAIInferenceModel, default_entra_scope
from majordome.models.base import ModelRequest, StreamChunk
from majordome.testing import StubLLMServer, StubReply

KEY = "azure-test-key-5f1c2e9d"
DEPLOYMENT = "DeepSeek-V3"
PNG = "data:image/png;base64,iVBORw0KGgo="


def _request(text: str = "Hello?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_output_tokens=64, **kwargs)


@pytest.fixture
async def model(stub: StubLLMServer) -> AsyncIterator[AzureAIInferenceModel]:
    provider = AzureAIInferenceModel(
        model_id="deepseek-v3",
        deployment=DEPLOYMENT,
        endpoint=stub.azure_endpoint,
        credential_factory=lambda: AzureKeyCredential(KEY),
    )
    yield provider
    await provider.aclose()


async def _collect(model: AzureAIInferenceModel, request: ModelRequest) -> list[StreamChunk]:
    return [chunk async for chunk in model.stream(request)]


def _assert_safe(error: BaseException, stub: StubLLMServer) -> None:
    """Neither the key nor the endpoint (nor the host) leaks into an error message."""
    message = str(error)
    for secret in (KEY, stub.azure_endpoint, stub.url, f"{stub.host}:{stub.port}"):
        assert secret not in message


# -- the request on the wire -------------------------------------------------------------------


async def test_complete_parses_text_usage_and_finish(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("Bonjour from Azure.", usage=(12, 4)))

    response = await model.complete(_request())

    assert response.text == "Bonjour from Azure."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.estimated) == (12, 4, False)
    assert response.finish_reason == "stop"
    assert response.served_by == "azure-ai-inference:DeepSeek-V3"


async def test_request_on_the_wire(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    await model.complete(_request("What time is it?", temperature=0.2, json_mode=True, stop=("END",)))

    [sent] = stub.requests
    assert sent.method == "POST"
    assert sent.path == "/models/chat/completions"
    assert "api-version=" in sent.query
    assert sent.body["model"] == DEPLOYMENT
    assert sent.body["messages"] == [{"role": "user", "content": "What time is it?"}]
    assert sent.body["max_tokens"] == 64
    assert sent.body["temperature"] == 0.2
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.body["stop"] == ["END"]
    assert "stream" not in sent.body
    # azure-ai-inference sends the key both ways; an endpoint accepts either.
    assert sent.headers.get("api-key") == KEY or sent.headers.get("authorization") == f"Bearer {KEY}"


async def test_explicit_api_version_is_sent(stub: StubLLMServer) -> None:
    provider = AzureAIInferenceModel(
        model_id="m", deployment="d", endpoint=stub.azure_endpoint,
        credential_factory=lambda: AzureKeyCredential(KEY), api_version="2024-08-01-preview",
    )
    try:
        await provider.complete(_request())
    finally:
        await provider.aclose()
    assert "api-version=2024-08-01-preview" in stub.requests[0].query


async def test_multimodal_parts_are_encoded(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    message = Message(role="user", content=[TextPart(text="What is this?"), ImagePart(url=PNG, detail="low")])
    request = ModelRequest(messages=[Message(role="system", content="Be brief."), message], max_output_tokens=32)

    await model.complete(request)

    assert stub.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            ],
        },
    ]


async def test_no_usage_reported_gives_none(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("no usage here", usage=None))
    response = await model.complete(_request())
    assert response.text == "no usage here"
    assert response.usage is None


async def test_stream_yields_text_then_usage(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("one two three", usage=(7, 3)))

    chunks = await _collect(model, _request())

    assert [c.text for c in chunks if c.text] == ["one", " two", " three"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (7, 3)
    assert stub.requests[0].body["stream"] is True
    assert stub.requests[0].body["model"] == DEPLOYMENT


async def test_model_reconnects_after_aclose(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("first"), StubReply.ok("second"))
    assert (await model.complete(_request())).text == "first"
    await model.aclose()
    assert (await model.complete(_request())).text == "second"


def test_one_client_per_event_loop(stub: StubLLMServer) -> None:
    provider = AzureAIInferenceModel(
        model_id="m", deployment="d", endpoint=stub.azure_endpoint, credential_factory=lambda: AzureKeyCredential(KEY)
    )

    async def call() -> str:
        try:
            return (await provider.complete(_request())).text
        finally:
            await provider.aclose()

    stub.enqueue(StubReply.ok("loop one"), StubReply.ok("loop two"))
    assert [asyncio.run(call()), asyncio.run(call())] == ["loop one", "loop two"]


# -- errors, translated ------------------------------------------------------------------------


async def test_429_becomes_rate_limited_with_retry_after(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(429, "slow down", retry_after=7))

    with pytest.raises(ProviderRateLimited) as caught:
        await model.complete(_request())

    error = caught.value
    assert error.retry_after == 7
    assert error.status_code == 429
    assert error.retryable
    assert (error.model, error.deployment) == ("deepseek-v3", DEPLOYMENT)
    assert "429" in str(error) and "slow down" in str(error)
    assert error.__cause__ is not None  # translated at the boundary, the SDK's error kept
    _assert_safe(error, stub)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
async def test_http_errors(model: AzureAIInferenceModel, stub: StubLLMServer, status: int, retryable: bool) -> None:
    stub.enqueue(StubReply.http_error(status, "stub says no"))

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert type(caught.value) is ProviderHTTPError
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable
    _assert_safe(caught.value, stub)


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
    model: AzureAIInferenceModel, stub: StubLLMServer, reply: StubReply, expected: type[ProviderError], retryable: bool
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))

    with pytest.raises(expected) as caught:
        await model.complete(_request())

    assert caught.value.retryable is retryable
    assert caught.value.deployment == DEPLOYMENT
    _assert_safe(caught.value, stub)
    # The fault was the answer's, not the client's: the next call on the same model works.
    assert (await model.complete(_request())).text == "recovered"


async def test_error_detail_echoing_secrets_is_redacted(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(401, f"key {KEY} is not valid for {stub.azure_endpoint}/chat/completions"))

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert "is not valid for" in str(caught.value)
    _assert_safe(caught.value, stub)


async def test_stream_cut_midway_raises_during_iteration(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.cut_stream("alpha beta gamma delta", after_chunks=2))
    received: list[str] = []

    with pytest.raises(ProviderConnectionError) as caught:
        async for chunk in model.stream(_request()):
            received.append(chunk.text)

    assert received == ["alpha", " beta"]  # the error came after these, not before the first
    assert caught.value.retryable
    _assert_safe(caught.value, stub)


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
    model: AzureAIInferenceModel, stub: StubLLMServer, reply: StubReply, expected: type[ProviderError]
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))
    received: list[StreamChunk] = []

    with pytest.raises(expected) as caught:
        async for chunk in model.stream(_request()):
            received.append(chunk)

    assert not [c for c in received if c.text]
    _assert_safe(caught.value, stub)
    assert "".join([c.text async for c in model.stream(_request())]) == "recovered"


# -- Entra ID ----------------------------------------------------------------------------------


class FakeTokenCredential:
    """An async token credential like azure.identity.aio's, with no identity behind it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        self.closed = True


async def test_entra_token_reaches_the_server_as_bearer(stub: StubLLMServer) -> None:
    credential = FakeTokenCredential("entra-token-abc")
    provider = AzureAIInferenceModel(
        model_id="m", deployment=DEPLOYMENT, endpoint=stub.azure_endpoint, credential_factory=lambda: credential
    )
    stub.enqueue(StubReply.ok("token accepted"), StubReply.ok("streamed"))

    assert (await provider.complete(_request())).text == "token accepted"
    assert "".join([c.text async for c in provider.stream(_request())]) == "streamed"
    await provider.aclose()

    assert [r.headers.get("authorization") for r in stub.requests] == ["Bearer entra-token-abc"] * 2
    assert all("api-key" not in r.headers for r in stub.requests)
    assert credential.scopes[0] == ("https://ml.azure.com/.default",)
    assert credential.closed  # aclose closes the credential it made


async def test_entra_scope_can_be_given(stub: StubLLMServer) -> None:
    credential = FakeTokenCredential("t")
    provider = AzureAIInferenceModel(
        model_id="m", deployment="d", endpoint=stub.azure_endpoint, credential_factory=lambda: credential,
        entra_scope="api://custom/.default",
    )
    try:
        await provider.complete(_request())
    finally:
        await provider.aclose()
    assert credential.scopes == [("api://custom/.default",)]


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("https://my-hub.services.ai.azure.com/models", "https://cognitiveservices.azure.com/.default"),
        ("https://res.cognitiveservices.azure.com/", "https://cognitiveservices.azure.com/.default"),
        ("https://res.openai.azure.com/", "https://cognitiveservices.azure.com/.default"),
        ("https://DeepSeek-V3-abc.eastus2.models.ai.azure.com", "https://ml.azure.com/.default"),
        ("https://endpoint.inference.ml.azure.com/score", "https://ml.azure.com/.default"),
    ],
)
def test_default_entra_scope(endpoint: str, scope: str) -> None:
    assert default_entra_scope(endpoint) == scope


# -- the whole stack, sync and async -----------------------------------------------------------

API = "azure-ai-inference"
ASK = {"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"}


def test_stack_answers_and_sends_each_slot_its_key(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("ask", ASK, (StubReply.ok("Hi there.", usage=(20, 3)),))

    assert outcome.text == "Hi there."
    assert outcome.attempts == [("deepseek-v3", "ok", None)]
    answer = outcome.answer
    assert answer.model == "deepseek-v3" and answer.served_by == "azure-ai-inference:DeepSeek-V3"
    assert not answer.substituted
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (20, 3)
    assert answer.cost_usd == pytest.approx((20 * 1.14 + 3 * 4.56) / 1e6)
    sent = stack.server.requests[-1]
    assert sent.body["model"] == "DeepSeek-V3"
    assert "v3-key-0123456789" in (sent.headers.get("api-key"), sent.headers.get("authorization", "")[7:])


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
        assert outcome.elapsed_s >= 0.05  # Retry-After was honoured


def test_stack_falls_back_when_a_model_keeps_failing(make_stack: Any) -> None:
    stack = make_stack(API)
    replies = (*[StubReply.http_error(503)] * 3, StubReply.ok("Mistral here."))

    for kind in ("ask", "stream"):
        outcome = stack.both(kind, ASK, replies)
        assert outcome.text == "Mistral here."
        assert outcome.attempts == [*[("deepseek-v3", "ProviderHTTPError", 503)] * 3, ("mistral-large", "ok", None)]
        assert outcome.answer.served_by == "azure-ai-inference:Mistral-Large-2411"
    fallback = stack.server.requests[-1]
    assert fallback.body["model"] == "Mistral-Large-2411"
    assert "mistral-key-9876543210" in (fallback.headers.get("api-key"), fallback.headers.get("authorization", "")[7:])


def test_stack_broken_json_falls_back_at_once(make_stack: Any) -> None:
    stack = make_stack(API)
    for kind in ("ask", "stream"):
        outcome = stack.both(kind, ASK, (StubReply.broken_json(), StubReply.ok("Clean answer.")))
        assert outcome.text == "Clean answer."
        assert outcome.attempts == [("deepseek-v3", "ProviderResponseError", None), ("mistral-large", "ok", None)]


def test_stack_every_candidate_failing_lists_the_causes(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("ask", ASK, (StubReply.http_error(400, "bad"), StubReply.http_error(400, "bad")))
    assert isinstance(outcome.error, AllCandidatesFailed)
    assert outcome.attempts == [("deepseek-v3", "ProviderHTTPError", 400), ("mistral-large", "ProviderHTTPError", 400)]
    for secret in ("v3-key-0123456789", "mistral-key-9876543210", stack.endpoint):
        assert secret not in str(outcome.error)


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
    assert outcome.text == "Full answer."
    assert outcome.attempts == [("deepseek-v3", "ProviderConnectionError", None), ("deepseek-v3", "ok", None)]


def test_stack_stream_cut_after_first_token_raises_with_partial_text(make_stack: Any) -> None:
    stack = make_stack(API)
    outcome = stack.both("stream", ASK, (StubReply.cut_stream("one two three four", after_chunks=2),))
    assert isinstance(outcome.error, StreamInterrupted)
    assert outcome.error.partial_text == "one two"
    assert outcome.deltas == ["one", " two"]
    assert stack.server.calls == 2  # once per mode: no retry, no fallback after the first token
