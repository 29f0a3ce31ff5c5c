"""Any OpenAI-compatible chat-completions endpoint through the ``openai`` SDK: OpenAI itself,
Azure OpenAI deployments, vendors' own APIs, vLLM, Ollama.

The SDK's own retries are off (``max_retries=0``): retries, timeouts and fallback belong to
:mod:`majordome.models.resilience`. SDK and transport errors are translated here.
"""

from __future__ import annotations

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
        # Masked in error details and logs even when this model is used outside Majordome.
        register_endpoint(base_url)
        register_secret(api_key)
        self._clients: PerLoop[openai.AsyncOpenAI] = PerLoop(self._make_client)
        # Import the SDK now (about a second), not inside the event loop on the first call.
        import openai  # noqa: F401

    def _make_client(self) -> openai.AsyncOpenAI:
        import httpx2
        import openai

        http_client: Any
        if self._http_client_factory is not None:
            http_client = self._http_client_factory()
        else:
            # The SDK's aiohttp transport: httpx2's own connection pool rescans every connection
            # on each request start and end, which costs seconds at 1,000 concurrent calls
            # (docs/BENCHMARKS.md).
            http_client = openai.DefaultAioHttpClient(
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
        import httpx
        import httpx2
        import openai

        where = {"model": self.model_id, "deployment": self.deployment}
        if isinstance(exc, openai.APIStatusError):
            detail = error_detail(getattr(exc, "body", None))
            message = f"{self.deployment} answered HTTP {exc.status_code}" + (f": {detail}" if detail else "")
            if exc.status_code == 429:
                return ProviderRateLimited(message, retry_after=retry_after_seconds(exc.response.headers), **where)
            return ProviderHTTPError(message, status_code=exc.status_code, **where)
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | httpx2.TimeoutException):
            if _dropped_connection(exc):
                return ProviderConnectionError(f"connection to {self.deployment} was dropped", **where)
            return ProviderTimeout(f"{self.deployment} timed out", **where)
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__ or exc).__name__
            return ProviderConnectionError(f"connection to {self.deployment} failed: {cause}", **where)
        if isinstance(exc, openai.APIResponseValidationError | ValueError):
            return ProviderResponseError(f"{self.deployment} sent a malformed answer: {type(exc).__name__}", **where)
        return ProviderConnectionError(f"connection to {self.deployment} broke: {type(exc).__name__}", **where)

    @staticmethod
    def _transport_errors() -> tuple[type[BaseException], ...]:
        """What the SDK call and its stream raise: the SDK's errors, httpx's and httpx2's."""
        import httpx
        import httpx2
        import openai

        return (openai.OpenAIError, httpx.HTTPError, httpx2.HTTPError, OSError, ValueError)

    # The body is already plain JSON (``request_body``) and the answer is parsed by the shared
    # parser, so the SDK's typed ``chat.completions.create`` (which re-processes the parameters
    # and builds pydantic objects) is skipped: ``post`` with ``cast_to=object`` sends the body as
    # is and gives the decoded JSON, with the SDK's URL building, auth and error classes.

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self._clients.get()
        try:
            payload = await client.post(
                "/chat/completions", body=request_body(self.deployment, request, stream=False), cast_to=object
            )
        except self._transport_errors() as exc:
            raise self._error(exc) from exc
        return parse_completion(payload, served_by=self.label, deployment=self.deployment, model_id=self.model_id)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        async def open_events() -> Any:
            import openai

            body = request_body(self.deployment, request, stream=True)
            body["stream_options"] = {"include_usage": True}
            return await self._clients.get().post(
                "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object]
            )

        return relay_chunks(
            open_events, self._transport_errors(), self._error, deployment=self.deployment, model_id=self.model_id
        )


def _dropped_connection(exc: BaseException) -> bool:
    """Whether a "timeout" was really a dropped connection: the SDK's aiohttp transport maps
    every ``aiohttp.ClientConnectionError`` (a reset, a server disconnect) to a timeout."""
    import aiohttp

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ServerTimeoutError | TimeoutError):
            return False
        if isinstance(seen, aiohttp.ClientConnectionError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
