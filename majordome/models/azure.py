"""Azure AI Inference (Azure AI Foundry models: DeepSeek, Phi, Llama, Mistral) through the
``azure-ai-inference`` SDK's async client, with an API key or an Entra ID token credential.

azure-core's retry policy is switched off (``retry_total=0``; it would not retry a POST on 429
anyway): retries, timeouts and fallback belong to :mod:`majordome.models.resilience`. The
SDK's errors are translated here, in an order that matters: azure-core reports a stream cut
midway (``IncompleteReadError``) and broken JSON (``DecodeError``) as subclasses of
``HttpResponseError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from majordome._errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
)
from majordome._logging import register_endpoint, register_secret
from majordome.models._wire import (
    PerLoop,
    error_detail,
    parse_completion,
    relay_chunks,
    request_body,
    retry_after_seconds,
)
from majordome.models.base import Model, ModelRequest, ModelResponse, StreamChunk

if TYPE_CHECKING:
    from azure.ai.inference.aio import ChatCompletionsClient

__all__ = ["AzureAIInferenceModel", "default_entra_scope"]

_COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
_ML_SCOPE = "https://ml.azure.com/.default"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def default_entra_scope(endpoint: str) -> str:
    """The token scope an endpoint expects: Foundry/Cognitive Services hosts use
    ``cognitiveservices.azure.com``, serverless and managed-compute endpoints ``ml.azure.com``."""
    host = urlsplit(endpoint).hostname or ""
    if host.endswith((".services.ai.azure.com", ".cognitiveservices.azure.com", ".openai.azure.com")):
        return _COGNITIVE_SCOPE
    return _ML_SCOPE


class AzureAIInferenceModel(Model):
    """One deployment behind an Azure AI Inference endpoint.

    ``credential_factory`` makes the credential for each event loop: an ``AzureKeyCredential``
    or an async token credential (``azure.identity.aio.DefaultAzureCredential``, which covers
    managed identity). ``max_connections`` sizes the aiohttp connection pool.
    """

    def __init__(
        self,
        *,
        model_id: str,
        deployment: str,
        endpoint: str,
        credential_factory: Callable[[], Any],
        api_version: str | None = None,
        entra_scope: str | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.model_id = model_id
        self.deployment = deployment
        self.label = f"azure-ai-inference:{deployment}"
        self._endpoint = endpoint
        self._credential_factory = credential_factory
        self._api_version = api_version
        self._scope = entra_scope or default_entra_scope(endpoint)
        self._max_connections = max_connections
        self._loopback = urlsplit(endpoint).hostname in _LOOPBACK
        # Masked in error details and logs even when this model is used outside Majordome.
        register_endpoint(endpoint)
        self._clients: PerLoop[tuple[ChatCompletionsClient, Any]] = PerLoop(self._make_client)
        # Import the SDK now, not inside the event loop on the first call.
        import azure.ai.inference.aio  # noqa: F401

    def _make_client(self) -> tuple[ChatCompletionsClient, Any]:
        import aiohttp
        from azure.ai.inference.aio import ChatCompletionsClient
        from azure.core.pipeline.transport import AioHttpTransport

        credential = self._credential_factory()
        register_secret(getattr(credential, "key", None))  # an AzureKeyCredential's key
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._max_connections))
        kwargs: dict[str, Any] = {
            "retry_total": 0,
            "transport": AioHttpTransport(session=session, session_owner=True),
            "credential_scopes": [self._scope],
            "logging_enable": False,
        }
        if self._api_version:
            kwargs["api_version"] = self._api_version
        return ChatCompletionsClient(endpoint=self._endpoint, credential=credential, **kwargs), credential

    def _call_options(self, credential: Any) -> dict[str, Any]:
        """Per-call options. azure-core refuses bearer tokens over plain HTTP; on loopback (tests)
        that check is lifted. Only the token policy consumes ``enforce_https``: with a key
        credential it would travel on to aiohttp, which rejects unknown arguments."""
        if self._loopback and hasattr(credential, "get_token"):
            return {"enforce_https": False}
        return {}

    async def aclose(self) -> None:
        pair = self._clients.pop_current()
        if pair is None:
            return
        client, credential = pair
        await client.close()
        close = getattr(credential, "close", None)
        if close is not None:
            await close()

    def _error(self, exc: BaseException) -> ProviderError:
        from azure.core import exceptions as az

        where = {"model": self.model_id, "deployment": self.deployment}
        if isinstance(exc, az.ServiceRequestTimeoutError | az.ServiceResponseTimeoutError):
            return ProviderTimeout(f"{self.deployment} timed out", **where)
        if isinstance(exc, az.IncompleteReadError):
            return ProviderConnectionError(f"the answer from {self.deployment} was cut off", **where)
        if isinstance(exc, az.DecodeError):
            return ProviderResponseError(f"{self.deployment} sent a malformed answer: {type(exc).__name__}", **where)
        if isinstance(exc, az.HttpResponseError):
            status = exc.status_code or 0
            response = exc.response
            detail = ""
            if response is not None:
                try:
                    detail = error_detail(response.text())
                except Exception:  # noqa: BLE001 - a body we cannot read adds nothing
                    detail = ""
            message = f"{self.deployment} answered HTTP {status}" + (f": {detail}" if detail else "")
            if status == 429:
                raw_headers: Any = getattr(response, "headers", None)
                headers = dict(raw_headers) if raw_headers is not None else None
                return ProviderRateLimited(message, retry_after=retry_after_seconds(headers), **where)
            if status == 0:
                return ProviderConnectionError(f"connection to {self.deployment} failed", **where)
            return ProviderHTTPError(message, status_code=status, **where)
        if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError | OSError):
            return ProviderConnectionError(f"connection to {self.deployment} failed: {type(exc).__name__}", **where)
        if isinstance(exc, ValueError):  # a body that is not JSON (json.JSONDecodeError, DeserializationError)
            return ProviderResponseError(f"{self.deployment} sent a malformed answer: {type(exc).__name__}", **where)
        return ProviderConnectionError(f"call to {self.deployment} failed: {type(exc).__name__}", **where)

    @staticmethod
    def _transport_errors() -> tuple[type[BaseException], ...]:
        """What the SDK call itself raises: azure-core's errors, aiohttp's, and the ValueError of
        a body that is not JSON at all."""
        import aiohttp
        from azure.core.exceptions import AzureError

        return (AzureError, aiohttp.ClientError, OSError, ValueError)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client, credential = self._clients.get()
        try:
            result: Any = await client.complete(
                body=request_body(self.deployment, request, stream=False), **self._call_options(credential)
            )
        except self._transport_errors() as exc:
            raise self._error(exc) from exc
        return parse_completion(result, served_by=self.label, deployment=self.deployment, model_id=self.model_id)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        async def open_events() -> Any:
            client, credential = self._clients.get()
            body = request_body(self.deployment, request, stream=True)
            return await client.complete(body=body, **self._call_options(credential))

        return relay_chunks(
            open_events, self._transport_errors(), self._error, deployment=self.deployment, model_id=self.model_id
        )
