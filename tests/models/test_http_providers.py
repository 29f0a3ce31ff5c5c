"""The contract both HTTP providers keep, AzureAIInferenceModel and OpenAICompatibleModel alike,
checked against the real loopback stub: parsing of answers and streams, usage, errors translated
(with no secret in their messages), the client's life across ``aclose`` and event loops, and the
whole stack, sync and async. What only one provider does lives in its own test module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential

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
from majordome.models.azure import AzureAIInferenceModel
from majordome.models.base import Model, ModelRequest, StreamChunk
from majordome.models.messages import AudioPart
from majordome.models.openai_compat import OpenAICompatibleModel
from majordome.testing import StubLLMServer, StubReply

PNG = "data:image/png;base64,iVBORw0KGgo="
WAV = "UklGRiQAAABXQVZF"


@dataclass(frozen=True)
class Provider:
    """One HTTP provider as these tests see it: how to build it against the stub, and what it
    should put on the wire."""

    api: str  # the ``served_by`` prefix, and the ``api`` the whole stack is configured with
    key: str
    deployment: str
    path: str  # where the stub receives the call
    build: Callable[[StubLLMServer, str, str], Model]  # (stub, model_id, deployment) -> model
    endpoint_of: Callable[[StubLLMServer], str]
    stream_extra: dict[str, Any] = field(default_factory=dict)  # what ``stream`` adds to the body

    def make(self, stub: StubLLMServer, model_id: str = "deepseek-v3", deployment: str | None = None) -> Model:
        return self.build(stub, model_id, deployment or self.deployment)

    def secrets(self, stub: StubLLMServer) -> tuple[str, ...]:
        """What must never appear in an error message: the key, the endpoint, the host."""
        return self.key, self.endpoint_of(stub), stub.url, f"{stub.host}:{stub.port}"

    def assert_safe(self, error: BaseException, stub: StubLLMServer) -> None:
        message = str(error)
        for secret in self.secrets(stub):
            assert secret not in message


AZURE_KEY = "azure-test-key-5f1c2e9d"
OPENAI_KEY = "sk-test-openai-7d3e1f0a"

PROVIDERS = {
    "azure-ai-inference": Provider(
        api="azure-ai-inference",
        key=AZURE_KEY,
        deployment="DeepSeek-V3",
        path="/models/chat/completions",
        build=lambda stub, model_id, deployment: AzureAIInferenceModel(
            model_id=model_id,
            deployment=deployment,
            endpoint=stub.azure_endpoint,
            credential_factory=lambda: AzureKeyCredential(AZURE_KEY),
        ),
        endpoint_of=lambda stub: stub.azure_endpoint,
    ),
    "openai": Provider(
        api="openai",
        key=OPENAI_KEY,
        deployment="deepseek-chat",
        path="/v1/chat/completions",
        build=lambda stub, model_id, deployment: OpenAICompatibleModel(
            model_id=model_id, deployment=deployment, base_url=stub.openai_base_url, api_key=OPENAI_KEY
        ),
        endpoint_of=lambda stub: stub.openai_base_url,
        stream_extra={"stream_options": {"include_usage": True}},
    ),
}


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]


@pytest.fixture
async def model(provider: Provider, stub: StubLLMServer) -> AsyncIterator[Model]:
    built = provider.make(stub)
    yield built
    await built.aclose()


def _request(text: str = "Hello?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_output_tokens=64, **kwargs)


# -- answers and streams -----------------------------------------------------------------------


async def test_complete_parses_text_usage_and_finish(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok(f"Hello from {provider.api}.", usage=(12, 4)))

    response = await model.complete(_request())

    assert response.text == f"Hello from {provider.api}."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.estimated) == (12, 4, False)
    assert response.finish_reason == "stop"
    assert response.served_by == f"{provider.api}:{provider.deployment}"


async def test_request_body_on_the_wire(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    await model.complete(_request("What time is it?", temperature=0.2, json_mode=True, stop=("END",)))

    [sent] = stub.requests
    assert sent.method == "POST"
    assert sent.path == provider.path
    assert sent.body == {  # exactly: no "stream", nothing the SDK added on its own
        "model": provider.deployment,
        "messages": [{"role": "user", "content": "What time is it?"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
        "stop": ["END"],
    }


async def test_a_json_schema_is_sent_as_a_strict_response_format(model: Model, stub: StubLLMServer) -> None:
    schema = {"type": "object", "properties": {"intent": {"enum": ["a", "b"]}}, "required": ["intent"]}
    await model.complete(_request("classify", json_mode=True, json_schema=schema))

    [sent] = stub.requests
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


async def test_multimodal_parts_are_encoded(model: Model, stub: StubLLMServer) -> None:
    parts = [
        TextPart(text="What is this?"),
        ImagePart(url=PNG, detail="low"),
        ImagePart(url=PNG, detail="high"),
        AudioPart(data=WAV, format="wav"),
    ]
    request = ModelRequest(
        messages=[Message(role="system", content="Be brief."), Message(role="user", content=parts)],
        max_output_tokens=32,
    )

    await model.complete(request)

    assert stub.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
                {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
            ],
        },
    ]


async def test_no_usage_reported_gives_none(model: Model, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("no usage here", usage=None))
    response = await model.complete(_request())
    assert response.text == "no usage here"
    assert response.usage is None


async def test_stream_yields_text_then_usage(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("one two three", usage=(7, 3)))

    chunks = [chunk async for chunk in model.stream(_request())]

    assert [c.text for c in chunks if c.text] == ["one", " two", " three"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.input_tokens, chunks[-1].usage.output_tokens) == (7, 3)
    assert stub.requests[0].body == {
        "model": provider.deployment,
        "messages": [{"role": "user", "content": "Hello?"}],
        "max_tokens": 64,
        "stream": True,
        **provider.stream_extra,
    }


async def test_model_reconnects_after_aclose(model: Model, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("first"), StubReply.ok("second"))
    assert (await model.complete(_request())).text == "first"
    await model.aclose()
    assert (await model.complete(_request())).text == "second"
    assert stub.calls == 2


def test_one_client_per_event_loop(provider: Provider, stub: StubLLMServer) -> None:
    built = provider.make(stub, model_id="m", deployment="d")

    async def call() -> str:
        try:
            return (await built.complete(_request())).text
        finally:
            await built.aclose()

    stub.enqueue(StubReply.ok("loop one"), StubReply.ok("loop two"))
    assert [asyncio.run(call()), asyncio.run(call())] == ["loop one", "loop two"]


# -- errors, translated ------------------------------------------------------------------------


async def test_429_becomes_rate_limited_with_retry_after(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(429, "slow down", retry_after=7))

    with pytest.raises(ProviderRateLimited) as caught:
        await model.complete(_request())

    error = caught.value
    assert error.retry_after == 7
    assert error.status_code == 429
    assert error.retryable
    assert (error.model, error.deployment) == ("deepseek-v3", provider.deployment)
    assert "429" in str(error) and "slow down" in str(error)
    assert error.__cause__ is not None  # translated at the boundary, the SDK's error kept
    provider.assert_safe(error, stub)


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)])
async def test_http_errors(model: Model, provider: Provider, stub: StubLLMServer, status: int, retryable: bool) -> None:
    stub.enqueue(StubReply.http_error(status, "stub says no"))

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert type(caught.value) is ProviderHTTPError
    assert caught.value.status_code == status
    assert caught.value.retryable is retryable
    provider.assert_safe(caught.value, stub)


@pytest.mark.parametrize(
    ("reply", "expected", "retryable"),
    [
        (StubReply.broken_json(), ProviderResponseError, False),
        (StubReply.reset(), ProviderConnectionError, True),  # OpenAI: a dropped connection, not a timeout
        (StubReply.cut_stream(), ProviderConnectionError, True),  # a truncated JSON body
    ],
    ids=["broken-json", "reset", "truncated-body"],
)
async def test_transport_and_format_errors(
    model: Model,
    provider: Provider,
    stub: StubLLMServer,
    reply: StubReply,
    expected: type[ProviderError],
    retryable: bool,
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))

    with pytest.raises(expected) as caught:
        await model.complete(_request())

    assert caught.value.retryable is retryable
    assert caught.value.deployment == provider.deployment
    provider.assert_safe(caught.value, stub)
    # The fault was the answer's, not the client's: the next call on the same model works.
    assert (await model.complete(_request())).text == "recovered"


async def test_error_detail_echoing_secrets_is_redacted(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    endpoint = provider.endpoint_of(stub)
    stub.enqueue(
        StubReply.http_error(401, f"Incorrect API key {provider.key} is not valid for {endpoint}/chat/completions")
    )

    with pytest.raises(ProviderHTTPError) as caught:
        await model.complete(_request())

    assert "Incorrect API key" in str(caught.value)
    assert "is not valid for" in str(caught.value)
    provider.assert_safe(caught.value, stub)


async def test_stream_cut_midway_raises_during_iteration(model: Model, provider: Provider, stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.cut_stream("alpha beta gamma delta", after_chunks=2))
    received: list[str] = []

    with pytest.raises(ProviderConnectionError) as caught:
        async for chunk in model.stream(_request()):
            received.append(chunk.text)

    assert received == ["alpha", " beta"]  # the error came after these, not before the first
    assert caught.value.retryable
    provider.assert_safe(caught.value, stub)


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
    model: Model, provider: Provider, stub: StubLLMServer, reply: StubReply, expected: type[ProviderError]
) -> None:
    stub.enqueue(reply, StubReply.ok("recovered"))
    received: list[StreamChunk] = []

    with pytest.raises(expected) as caught:
        async for chunk in model.stream(_request()):
            received.append(chunk)

    assert type(caught.value) is expected
    assert not [c for c in received if c.text]
    provider.assert_safe(caught.value, stub)
    assert "".join([c.text async for c in model.stream(_request())]) == "recovered"


# -- the whole stack, sync and async -----------------------------------------------------------

ASK = {"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"}
KINDS = ("ask", "stream")


@pytest.fixture
def stack(make_stack: Any, provider: Provider) -> Any:
    """A Majordome whose DeepSeek-V3 and Mistral-Large slots call the stub over this provider."""
    return make_stack(provider.api)


def test_stack_answers(stack: Any, provider: Provider) -> None:
    outcome = stack.both("ask", ASK, (StubReply.ok("Hi there.", usage=(20, 3)),))

    assert outcome.text == "Hi there."
    assert outcome.attempts == [("deepseek-v3", "ok", None)]
    answer = outcome.answer
    assert answer.model == "deepseek-v3" and answer.served_by == f"{provider.api}:DeepSeek-V3"
    assert not answer.substituted
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (20, 3)
    assert answer.cost_usd == pytest.approx((20 * 1.14 + 3 * 4.56) / 1e6)
    sent = stack.server.requests[-1]
    assert sent.path == provider.path
    assert sent.body["model"] == "DeepSeek-V3"


def test_stack_stream_matches_ask(stack: Any) -> None:
    streamed = stack.both("stream", ASK, (StubReply.ok("same words either way", usage=(8, 4)),))
    asked = stack.both("ask", ASK, (StubReply.ok("same words either way", usage=(8, 4)),))

    assert streamed.deltas == ["same", " words", " either", " way"]
    assert streamed.text == asked.text == "same words either way"
    assert streamed.answer.usage == asked.answer.usage
    assert streamed.attempts == asked.attempts


@pytest.mark.parametrize("kind", KINDS)
def test_stack_retries_429_and_500_then_succeeds(stack: Any, kind: str) -> None:
    replies = (StubReply.http_error(429, retry_after=0.05), StubReply.http_error(500), StubReply.ok("Third time."))

    outcome = stack.both(kind, ASK, replies)

    assert outcome.text == "Third time."
    assert outcome.attempts == [
        ("deepseek-v3", "ProviderRateLimited", 429),
        ("deepseek-v3", "ProviderHTTPError", 500),
        ("deepseek-v3", "ok", None),
    ]
    assert outcome.elapsed_s >= 0.05  # Retry-After was honoured


def test_stack_retry_after_beyond_the_deadline_falls_back_at_once(stack: Any) -> None:
    request = {**ASK, "deadline_s": 2.0}
    outcome = stack.both("ask", request, (StubReply.http_error(429, retry_after=10), StubReply.ok("Mistral here.")))
    assert outcome.text == "Mistral here."
    assert outcome.attempts == [("deepseek-v3", "ProviderRateLimited", 429), ("mistral-large", "ok", None)]
    assert outcome.elapsed_s < 1.5  # nobody slept on the Retry-After


@pytest.mark.parametrize("kind", KINDS)
def test_stack_falls_back_when_a_model_keeps_failing(stack: Any, provider: Provider, kind: str) -> None:
    replies = (*[StubReply.http_error(503)] * 3, StubReply.ok("Mistral here."))

    outcome = stack.both(kind, ASK, replies)

    assert outcome.text == "Mistral here."
    assert outcome.attempts == [*[("deepseek-v3", "ProviderHTTPError", 503)] * 3, ("mistral-large", "ok", None)]
    assert outcome.answer.served_by == f"{provider.api}:Mistral-Large-2411"
    assert stack.server.requests[-1].body["model"] == "Mistral-Large-2411"


@pytest.mark.parametrize("kind", KINDS)
def test_stack_broken_json_falls_back_at_once(stack: Any, kind: str) -> None:
    outcome = stack.both(kind, ASK, (StubReply.broken_json(), StubReply.ok("Clean answer.")))
    assert outcome.text == "Clean answer."
    assert outcome.attempts == [("deepseek-v3", "ProviderResponseError", None), ("mistral-large", "ok", None)]


@pytest.mark.parametrize("kind", KINDS)
def test_stack_every_candidate_failing_lists_the_causes(stack: Any, kind: str) -> None:
    outcome = stack.both(kind, ASK, (StubReply.http_error(400, "bad"), StubReply.http_error(400, "bad")))
    assert isinstance(outcome.error, AllCandidatesFailed)
    assert outcome.attempts == [("deepseek-v3", "ProviderHTTPError", 400), ("mistral-large", "ProviderHTTPError", 400)]
    for secret in ("v3-key-0123456789", "mistral-key-9876543210", stack.endpoint):
        assert secret not in str(outcome.error)


@pytest.mark.parametrize("kind", KINDS)
def test_stack_respects_the_deadline_when_the_server_is_slow(stack: Any, kind: str) -> None:
    outcome = stack.both(kind, {**ASK, "deadline_s": 0.3}, (StubReply.slow(1.5),))
    assert isinstance(outcome.error, DeadlineExceeded)
    assert outcome.attempts == [("deepseek-v3", "ProviderTimeout", None)]
    assert outcome.elapsed_s < 1.2


def test_stack_stream_cut_before_first_token_is_retried(stack: Any) -> None:
    replies = (StubReply.cut_stream("never seen", after_chunks=0), StubReply.ok("Full answer."))
    outcome = stack.both("stream", ASK, replies)
    assert outcome.deltas == ["Full", " answer."]
    assert outcome.text == "Full answer."
    assert outcome.attempts == [("deepseek-v3", "ProviderConnectionError", None), ("deepseek-v3", "ok", None)]


def test_stack_stream_cut_after_first_token_raises_with_partial_text(stack: Any) -> None:
    outcome = stack.both("stream", ASK, (StubReply.cut_stream("one two three four", after_chunks=2),))
    assert isinstance(outcome.error, StreamInterrupted)
    assert outcome.error.partial_text == "one two"
    assert outcome.deltas == ["one", " two"]
    assert stack.server.calls == 2  # once per mode: no retry, no fallback after the first token
