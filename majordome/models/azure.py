"""Azure AI Inference (Azure AI Foundry models: DeepSeek, Phi, Llama, Mistral) through the
``azure-ai-inference`` SDK's async client, with an API key or an Entra ID token credential.

azure-core's retry policy is switched off (``retry_total=0``; it would not retry a POST on 429
anyway): retries, timeouts and fallback belong to :mod:`majordome.models.resilience`. The
SDK's errors are translated here, in an order that matters: azure-core reports a stream cut
midway (``IncompleteReadError``) and broken JSON (``DecodeError``) as subclasses of
``HttpResponseError``.
"""

from __future__ import annotations

import json
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
from majordome.models._wire import PerLoop, error_detail, request_body, retry_after_seconds
from majordome.models.base import Model, ModelRequest, ModelResponse, StreamChunk
from majordome.models.messages import Usage

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
        # Bearer tokens over plain HTTP are refused by azure-core; allowed only on loopback (tests).
        self._call_options: dict[str, Any] = (
            {"enforce_https": False} if urlsplit(endpoint).hostname in _LOOPBACK else {}
        )
        self._clients: PerLoop[tuple[ChatCompletionsClient, Any]] = PerLoop(self._make_client)

    def _make_client(self) -> tuple[ChatCompletionsClient, Any]:
        import aiohttp
        from azure.ai.inference.aio import ChatCompletionsClient
        from azure.core.pipeline.transport import AioHttpTransport

        credential = self._credential_factory()
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
                headers = dict(response.headers) if response is not None else None
                return ProviderRateLimited(message, retry_after=retry_after_seconds(headers), **where)
            if status == 0:
                return ProviderConnectionError(f"connection to {self.deployment} failed", **where)
            return ProviderHTTPError(message, status_code=status, **where)
        if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError | OSError):
            return ProviderConnectionError(f"connection to {self.deployment} failed: {type(exc).__name__}", **where)
        if isinstance(exc, ValueError | KeyError | TypeError | IndexError | AttributeError | json.JSONDecodeError):
            return ProviderResponseError(f"{self.deployment} sent a malformed answer: {type(exc).__name__}", **where)
        return ProviderConnectionError(f"call to {self.deployment} failed: {type(exc).__name__}", **where)

    @staticmethod
    def _translatable() -> tuple[type[BaseException], ...]:
        import aiohttp
        from azure.core.exceptions import AzureError

        return (AzureError, aiohttp.ClientError, OSError, ValueError, KeyError, TypeError, IndexError, AttributeError)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client, _ = self._clients.get()
        try:
            result: Any = await client.complete(
                body=request_body(self.deployment, request, stream=False), **self._call_options
            )
            choice = result.choices[0]
            text = choice.message.content
            if text is None and not choice.message.get("tool_calls"):
                raise ValueError("no content")
            usage = result.get("usage")
            reasoning = choice.message.get("reasoning_content")
            finish = choice.get("finish_reason")
            tokens = Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])) if usage else None
        except self._translatable() as exc:
            raise self._error(exc) from exc
        return ModelResponse(
            text=text or "",
            served_by=self.label,
            finish_reason=str(finish) if finish is not None else None,
            usage=tokens,
            reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        client, _ = self._clients.get()
        try:
            updates: Any = await client.complete(
                body=request_body(self.deployment, request, stream=True), **self._call_options
            )
            async with updates:
                async for update in updates:
                    raw_usage = update.get("usage")
                    usage = (
                        Usage(int(raw_usage["prompt_tokens"]), int(raw_usage["completion_tokens"]))
                        if raw_usage
                        else None
                    )
                    choices = update.get("choices") or []
                    if not choices:
                        if usage is not None:
                            yield StreamChunk(usage=usage)
                        continue
                    choice = choices[0]
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content")
                    finish = choice.get("finish_reason")
                    yield StreamChunk(
                        text=delta.get("content") or "",
                        reasoning=reasoning if isinstance(reasoning, str) else "",
                        finish_reason=str(finish) if finish is not None else None,
                        usage=usage,
                    )
        except self._translatable() as exc:
            raise self._error(exc) from exc
