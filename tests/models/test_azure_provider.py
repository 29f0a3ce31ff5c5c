"""What only AzureAIInferenceModel (azure-ai-inference SDK over aiohttp) does, against a real
loopback stub: the api-version and the key on the wire, Entra ID tokens and their scopes, the
order in which azure-core's errors are translated, and each catalogue slot's own key through the
whole stack. The contract it shares with the OpenAI-compatible provider is in
``test_http_providers.py``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core import exceptions as az
from azure.core.credentials import AccessToken, AzureKeyCredential

from majordome import Message, ProviderConnectionError, ProviderError, ProviderResponseError
from majordome.models.azure import AzureAIInferenceModel, default_entra_scope
from majordome.models.base import ModelRequest
from majordome.testing import StubLLMServer, StubReply

KEY = "azure-test-key-5f1c2e9d"
DEPLOYMENT = "DeepSeek-V3"


def _request(text: str = "Hello?", **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_output_tokens=64, **kwargs)


def _model(stub: StubLLMServer, **kwargs: Any) -> AzureAIInferenceModel:
    """The provider pointed at the stub, with the test key unless another credential is given."""
    kwargs.setdefault("credential_factory", lambda: AzureKeyCredential(KEY))
    return AzureAIInferenceModel(model_id="deepseek-v3", deployment=DEPLOYMENT, endpoint=stub.azure_endpoint, **kwargs)


@pytest.fixture
async def model(stub: StubLLMServer) -> AsyncIterator[AzureAIInferenceModel]:
    provider = _model(stub)
    yield provider
    await provider.aclose()


# -- the request on the wire -------------------------------------------------------------------


async def test_api_version_and_key_on_the_wire(model: AzureAIInferenceModel, stub: StubLLMServer) -> None:
    await model.complete(_request())

    [sent] = stub.requests
    assert "api-version=" in sent.query
    # azure-ai-inference sends the key both ways; an endpoint accepts either.
    assert sent.headers.get("api-key") == KEY or sent.headers.get("authorization") == f"Bearer {KEY}"


async def test_explicit_api_version_is_sent(stub: StubLLMServer) -> None:
    provider = _model(stub, api_version="2024-08-01-preview")
    try:
        await provider.complete(_request())
    finally:
        await provider.aclose()
    assert "api-version=2024-08-01-preview" in stub.requests[0].query


# -- azure-core's errors, translated in order --------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "sdk_error", "expected"),
    [
        (StubReply.cut_stream(), az.IncompleteReadError, ProviderConnectionError),  # a truncated JSON body
        (StubReply.broken_json(), az.DecodeError, ProviderResponseError),
    ],
    ids=["truncated-body", "broken-json"],
)
async def test_http_response_error_subclasses_are_not_http_errors(
    model: AzureAIInferenceModel,
    stub: StubLLMServer,
    reply: StubReply,
    sdk_error: type[az.HttpResponseError],
    expected: type[ProviderError],
) -> None:
    """azure-core raises a cut body and broken JSON as subclasses of HttpResponseError (with a
    200 status): they must be caught before it, or they would read as HTTP errors."""
    assert issubclass(sdk_error, az.HttpResponseError)
    stub.enqueue(reply)

    with pytest.raises(expected) as caught:
        await model.complete(_request())

    assert isinstance(caught.value.__cause__, sdk_error)


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
    provider = _model(stub, credential_factory=lambda: credential)
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
    provider = _model(stub, credential_factory=lambda: credential, entra_scope="api://custom/.default")
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


# -- the whole stack: each slot its own key ----------------------------------------------------

ASK = {"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"}
SLOT_KEYS = {"DeepSeek-V3": "v3-key-0123456789", "Mistral-Large-2411": "mistral-key-9876543210"}


def _sent_key(headers: dict[str, str]) -> str | None:
    """The key a request carried, in whichever header azure-ai-inference put it."""
    return headers.get("api-key") or headers.get("authorization", "").removeprefix("Bearer ") or None


@pytest.mark.parametrize("kind", ["ask", "stream"])
def test_stack_sends_each_slot_its_key(make_stack: Any, kind: str) -> None:
    stack = make_stack("azure-ai-inference")
    outcome = stack.both(kind, ASK, (*[StubReply.http_error(503)] * 3, StubReply.ok("Mistral here.")))

    assert outcome.text == "Mistral here."
    sent = [(r.body["model"], _sent_key(r.headers)) for r in stack.server.requests]
    assert (
        sent
        == [*[("DeepSeek-V3", SLOT_KEYS["DeepSeek-V3"])] * 3, ("Mistral-Large-2411", SLOT_KEYS["Mistral-Large-2411"])]
        * 2
    )
