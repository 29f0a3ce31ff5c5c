"""Any OpenAI-compatible chat-completions endpoint through the ``openai`` SDK: OpenAI itself,
Azure OpenAI deployments, vendors' own APIs, vLLM, Ollama.

The SDK's own retries are off (``max_retries=0``): retries, timeouts and fallback belong to
:mod:`majordome.models.resilience`. SDK and transport errors are translated here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

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
    import httpx
    import openai

__all__ = ["OpenAICompatibleModel"]


class OpenAICompatibleModel(Model):
    """One deployment behind an OpenAI-compatible endpoint.

    ``http_client_factory`` may return an ``httpx.AsyncClient`` (respx can intercept it) or an
    ``httpx2.AsyncClient``; by default the SDK's own client is made with a pool sized for
    ``max_connections`` concurrent calls. ``azure_api_version`` switches to Azure OpenAI
    (``AsyncAzureOpenAI``), where ``base_url`` is the resource endpoint and ``deployment`` the
    deployment name; ``token_provider`` (an async callable) gives Entra ID tokens instead of a key.
    """

    def __init__(
        self,
        *,
        model_id: str,
        deployment: str,
        base_url: str,
        api_key: str | None = None,
        azure_api_version: str | None = None,
        token_provider: Callable[[], Any] | None = None,
        http_client_factory: Callable[[], httpx.AsyncClient] | None = None,
        max_connections: int = 1000,
    ) -> None:
        self.model_id = model_id
        self.deployment = deployment
        self.label = f"{'azure-openai' if azure_api_version else 'openai'}:{deployment}"
        self._base_url = base_url
        self._api_key = api_key
        self._azure_api_version = azure_api_version
        self._token_provider = token_provider
        self._http_client_factory = http_client_factory
        self._max_connections = max_connections
        self._clients: PerLoop[openai.AsyncOpenAI] = PerLoop(self._make_client)

    def _make_client(self) -> openai.AsyncOpenAI:
        import httpx2
        import openai

        http_client: Any
        if self._http_client_factory is not None:
            http_client = self._http_client_factory()
        else:
            http_client = httpx2.AsyncClient(
                limits=httpx2.Limits(
                    max_connections=self._max_connections, max_keepalive_connections=self._max_connections
                ),
                timeout=httpx2.Timeout(600.0, connect=30.0),
            )
        if self._azure_api_version is not None:
            return openai.AsyncAzureOpenAI(
                azure_endpoint=self._base_url,
                api_version=self._azure_api_version,
                api_key=self._api_key,
                azure_ad_token_provider=self._token_provider,
                max_retries=0,
                http_client=http_client,
            )
        return openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key or "unused",
            max_retries=0,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        client = self._clients.pop_current()
        if client is not None:
            await client.close()

    def _error(self, exc: BaseException) -> ProviderError:
        import openai

        where = {"model": self.model_id, "deployment": self.deployment}
        if isinstance(exc, openai.APIStatusError):
            detail = error_detail(getattr(exc, "body", None))
            message = f"{self.deployment} answered HTTP {exc.status_code}" + (f": {detail}" if detail else "")
            if exc.status_code == 429:
                return ProviderRateLimited(message, retry_after=retry_after_seconds(exc.response.headers), **where)
            return ProviderHTTPError(message, status_code=exc.status_code, **where)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeout(f"{self.deployment} timed out", **where)
        if isinstance(exc, openai.APIConnectionError):
            return ProviderConnectionError(f"connection to {self.deployment} failed: {type(exc.__cause__ or exc).__name__}", **where)
        if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError | KeyError | TypeError):
            return ProviderResponseError(f"{self.deployment} sent a malformed answer: {type(exc).__name__}", **where)
        return ProviderConnectionError(f"connection to {self.deployment} broke: {type(exc).__name__}", **where)

    def _translatable(self) -> tuple[type[BaseException], ...]:
        import httpx
        import httpx2
        import openai

        return (openai.OpenAIError, httpx.HTTPError, httpx2.HTTPError, OSError, ValueError, KeyError, TypeError)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self._clients.get()
        body = request_body(self.deployment, request, stream=False)
        try:
            completion = await client.chat.completions.create(**body)
            choice = completion.choices[0]
            text = choice.message.content
            if text is None and not getattr(choice.message, "tool_calls", None):
                raise ValueError("no content")
            usage = completion.usage
            reasoning = (choice.message.model_extra or {}).get("reasoning_content")
        except self._translatable() as exc:
            raise self._error(exc) from exc
        return ModelResponse(
            text=text or "",
            served_by=self.label,
            finish_reason=choice.finish_reason,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None,
            reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        client = self._clients.get()
        body = request_body(self.deployment, request, stream=True)
        body["stream_options"] = {"include_usage": True}
        try:
            events = await client.chat.completions.create(**body)
            async with events:
                async for event in events:
                    usage = (
                        Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                        if event.usage is not None
                        else None
                    )
                    if not event.choices:
                        if usage is not None:
                            yield StreamChunk(usage=usage)
                        continue
                    choice = event.choices[0]
                    reasoning = (choice.delta.model_extra or {}).get("reasoning_content")
                    yield StreamChunk(
                        text=choice.delta.content or "",
                        reasoning=reasoning if isinstance(reasoning, str) else "",
                        finish_reason=choice.finish_reason,
                        usage=usage,
                    )
        except self._translatable() as exc:
            raise self._error(exc) from exc
