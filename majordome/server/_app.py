"""The FastAPI application: OpenAI-compatible chat completions over a :class:`Majordome`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.responses import JSONResponse, Response, StreamingResponse

from majordome._client import Majordome
from majordome._errors import (
    AllCandidatesFailed,
    BadRequestError,
    BudgetExceeded,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceeded,
    DeadlineExceeded,
    MajordomeError,
    ProviderError,
    UnknownModelError,
)
from majordome._logging import get_logger
from majordome._types import Answer, Completed, StreamEvent, TextDelta
from majordome.quotas import QuotaExhausted, RateLimited
from majordome.server._auth import ApiKeys
from majordome.server._limits import RateLimiter, ServerLimits, retry_after_header
from majordome.server._wire import (
    AUTO_MODEL,
    ChatCompletionBody,
    FeedbackBody,
    chunk,
    completion,
    error_body,
    majordome_field,
    usage_field,
)

__all__ = ["ApiError", "create_app"]

_log = get_logger("majordome.server")


class ApiError(Exception):
    """An HTTP error answered in OpenAI's error format."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.headers = headers or {}
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)


def api_error(error: BaseException) -> ApiError:
    """The HTTP status and OpenAI error of ``error``. Messages of server-side failures name
    models and error classes only: never a key, an endpoint or an upstream message."""
    from majordome.feedback.budgets import BudgetUnavailable
    from majordome.feedback.loop import UnknownTrace
    from majordome.feedback.store import StoreError

    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnknownModelError):
        return ApiError(
            404,
            f"the model {error.name!r} does not exist; GET /v1/models lists them",
            "invalid_request_error",
            "model_not_found",
        )
    if isinstance(error, UnknownTrace):
        return ApiError(404, str(error), "invalid_request_error", "trace_not_found")
    if isinstance(error, ContextWindowExceeded):
        return ApiError(400, str(error), "invalid_request_error", "context_length_exceeded")
    if isinstance(error, CapabilityError):
        return ApiError(400, str(error), "invalid_request_error", "unsupported_capability")
    if isinstance(error, BadRequestError):
        return ApiError(400, str(error), "invalid_request_error", "invalid_request")
    if isinstance(error, RateLimited | QuotaExhausted):
        wait = error.retry_after_s if error.retry_after_s != float("inf") else 60.0
        return ApiError(
            429, str(error), "rate_limit_error", "rate_limited", headers={"retry-after": retry_after_header(wait)}
        )
    if isinstance(error, BudgetExceeded):
        # 402, not 429: a spent budget does not come back by retrying (and OpenAI clients retry 429)
        return ApiError(402, "the tenant's budget is spent", "insufficient_quota", "budget_exceeded")
    if isinstance(error, AllCandidatesFailed):
        tried = ", ".join(f"{model} ({type(cause).__name__})" for model, cause in error.causes) or "none"
        return ApiError(502, f"every candidate model failed: {tried}", "upstream_error", "all_candidates_failed")
    if isinstance(error, ProviderError):
        return ApiError(
            502,
            f"the model {error.model or 'call'} failed ({type(error).__name__})",
            "upstream_error",
            "provider_error",
        )
    if isinstance(error, DeadlineExceeded):
        return ApiError(504, f"the deadline of {error.deadline_s:g} s passed", "timeout", "deadline_exceeded")
    if isinstance(error, BudgetUnavailable | StoreError):
        return ApiError(
            503, f"a backing service is unavailable ({type(error).__name__})", "service_unavailable", "unavailable"
        )
    if isinstance(error, ConfigurationError):
        return ApiError(500, "the server is misconfigured; its logs say how", "server_error", "configuration_error")
    return ApiError(500, "internal error", "server_error", "internal_error")


def _error_response(error: BaseException, trace_id: str | None = None) -> JSONResponse:
    api = api_error(error)
    if api.status >= 500 or not isinstance(error, ApiError | MajordomeError):
        detail = str(error) if isinstance(error, MajordomeError) else ""
        _log.warning("server.error", trace_id=trace_id, status=api.status, error=type(error).__name__, detail=detail)
    headers = dict(api.headers)
    if trace_id:
        headers["x-majordome-trace-id"] = trace_id
    return JSONResponse(api.body(), status_code=api.status, headers=headers)


class _InFlight:
    """Counts the streams being sent, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._idle.is_set()


def _answer_headers(answer: Answer) -> dict[str, str]:
    return {
        "x-majordome-trace-id": answer.trace_id,
        "x-majordome-model": answer.model,
        "x-majordome-cost-usd": f"{answer.cost_usd:.8f}",
    }


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def create_app(majordome: Majordome, keys: ApiKeys, *, limits: ServerLimits | None = None) -> FastAPI:
    """The OpenAI-compatible API over ``majordome``, authenticated by ``keys``.

    The app owns ``majordome`` from then on: at shutdown it waits (up to
    ``limits.shutdown_grace_s``) for streams in flight, then closes it, which flushes its
    feedback queue.
    """
    limits = limits or ServerLimits()
    limiter: RateLimiter | None = limits.rate_limiter()
    in_flight = _InFlight()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if not await in_flight.wait(limits.shutdown_grace_s):
            _log.warning("server.shutdown_streams_cut", streams=in_flight.count)
        if limiter is not None:
            await limiter.close()
        await majordome.aclose()
        await asyncio.to_thread(majordome.close)  # the knowledge base and the feedback queue

    app = FastAPI(title="majordome", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def tenant_of(request: HTTPRequest) -> str:
        """The tenant of the request's API key (401 otherwise), counted against its rate limit."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401, "missing API key: send Authorization: Bearer <key>", "invalid_request_error", "missing_api_key"
            )
        tenant = keys.tenant_for(key.strip())
        if tenant is None:
            raise ApiError(401, "invalid API key", "invalid_request_error", "invalid_api_key")
        if limiter is not None:
            wait_s = await limiter.hit(tenant)
            if wait_s is not None:
                raise ApiError(
                    429,
                    f"rate limit of {limits.requests_per_minute} requests per minute reached",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    headers={"retry-after": retry_after_header(wait_s)},
                )
        return tenant

    async def read_body(request: HTTPRequest) -> bytes:
        too_large = ApiError(
            413, f"the body is larger than {limits.max_body_bytes} bytes", "invalid_request_error", "request_too_large"
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise too_large
        size, parts = 0, []
        async for part in request.stream():
            size += len(part)
            if size > limits.max_body_bytes:
                raise too_large
            parts.append(part)
        return b"".join(parts)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: HTTPRequest) -> Response:
        trace_id = uuid.uuid4().hex
        try:
            tenant = await tenant_of(request)
            body = ChatCompletionBody.parse(await read_body(request))
            req = body.to_request(tenant, trace_id, limits.max_messages)
            if req.model is not None:
                majordome.catalogue.resolve(req.model)  # unknown → 404 before any work
            if body.stream:
                return await stream_response(body, req.model, majordome.stream(req), trace_id)
            answer = await majordome.ask(req)
        except Exception as error:  # noqa: BLE001 - every failure becomes an OpenAI error response
            return _error_response(error, trace_id)
        return JSONResponse(completion(answer), headers=_answer_headers(answer))

    async def stream_response(
        body: ChatCompletionBody, pinned: str | None, events: AsyncIterator[StreamEvent], trace_id: str
    ) -> Response:
        # The first event is awaited before answering: a failure before the first token (routing,
        # budget, every candidate failing) is an HTTP error with its status, not a broken stream.
        first = await anext(events)
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        created = int(time.time())
        label = pinned or AUTO_MODEL
        in_flight.enter()

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield _sse(chunk(trace_id, created, label, {"role": "assistant", "content": ""}))
                event: StreamEvent = first
                while True:
                    if isinstance(event, TextDelta):
                        yield _sse(chunk(trace_id, created, label, {"content": event.text}))
                    elif isinstance(event, Completed):
                        answer = event.answer
                        last: dict[str, Any] = {"majordome": majordome_field(answer)}
                        finish = answer.finish_reason or "stop"
                        if include_usage:
                            yield _sse(chunk(trace_id, created, answer.model, {}, finish))
                            yield _sse(
                                {**chunk(trace_id, created, answer.model, None), "usage": usage_field(answer), **last}
                            )
                        else:
                            yield _sse(chunk(trace_id, created, answer.model, {}, finish, **last))
                        break
                    event = await anext(events)  # reasoning deltas are never sent
                yield _sse("[DONE]")
            except Exception as error:  # noqa: BLE001 - after the first byte, an error chunk ends the stream
                api = api_error(error)
                _log.warning("server.stream_failed", trace_id=trace_id, status=api.status, error=type(error).__name__)
                yield _sse(api.body())
            finally:
                # On a client's disconnect this task's scope is cancelled: closing the model's
                # stream is shielded (and bounded) so it runs, and the stream is counted out.
                try:
                    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + 5.0):
                        with contextlib.suppress(Exception):
                            await events.aclose()  # type: ignore[attr-defined]
                finally:
                    in_flight.leave()

        headers = {"x-majordome-trace-id": trace_id, "cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(lines(), media_type="text/event-stream", headers=headers)

    @app.post("/v1/feedback")
    async def feedback(request: HTTPRequest) -> Response:
        """Feedback on an answer of this tenant. 409 when this server records no feedback."""
        try:
            tenant = await tenant_of(request)
            body = FeedbackBody.parse(await read_body(request))
            loop = majordome.feedback_loop
            if loop is None:
                raise ApiError(
                    409,
                    "this server records no feedback (no feedback store is configured)",
                    "invalid_request_error",
                    "feedback_not_configured",
                )
            owner = await asyncio.to_thread(_trace_tenant, majordome, body.trace_id)
            if owner != tenant:  # another tenant's trace is answered as an unknown one
                raise ApiError(
                    404,
                    f"no decision was recorded for trace {body.trace_id!r}",
                    "invalid_request_error",
                    "trace_not_found",
                )
            result = await majordome.afeedback(
                body.trace_id, body.kind, body.value, draft=body.draft, idempotency_key=body.idempotency_key
            )
        except Exception as error:  # noqa: BLE001 - every failure becomes an OpenAI error response
            return _error_response(error)
        return JSONResponse(
            {
                "trace_id": result.trace_id,
                "kind": result.kind,
                "reward": result.reward,
                "stored": result.stored,
                "learned": result.learned,
            }
        )

    @app.get("/v1/models")
    async def models(request: HTTPRequest) -> Response:
        try:
            await tenant_of(request)
        except Exception as error:  # noqa: BLE001
            return _error_response(error)
        data: list[dict[str, Any]] = [{"id": AUTO_MODEL, "object": "model", "created": 0, "owned_by": "majordome"}]
        for m in majordome.models():
            if m.served_by is None:
                continue
            data.append(
                {
                    "id": m.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": "majordome",
                    "display_name": m.display_name,
                    "served_by": m.served_by,
                    "substituted": m.substituted,
                }
            )
        return JSONResponse({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        reasons = await _not_ready(majordome, limiter)
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def _trace_tenant(majordome: Majordome, trace_id: str) -> str | None:
    """The tenant a trace was recorded for (None when unknown). Blocking: run it off the loop."""
    loop = majordome.feedback_loop
    assert loop is not None
    recent = loop.recent(trace_id)
    if recent is not None:
        return recent.tenant
    decision = loop.store.decision(trace_id)
    if decision is None:
        loop.writer.flush_sync(timeout=5.0)  # it may still be in the writer's queue
        decision = loop.store.decision(trace_id)
    return decision.tenant if decision is not None else None


async def _not_ready(majordome: Majordome, limiter: RateLimiter | None) -> list[str]:
    reasons = []
    if not any(m.served_by is not None for m in majordome.models()):
        reasons.append("no chat model is deployed")
    loop = majordome.feedback_loop
    if loop is not None:
        try:
            await asyncio.wait_for(asyncio.to_thread(loop.store.schema_version), 5.0)
        except Exception as error:  # noqa: BLE001 - any failure means the store cannot be used
            reasons.append(f"the feedback store is unreachable ({type(error).__name__})")
    if majordome.config.knowledge_path is not None and majordome.knowledge is None:
        reasons.append("the knowledge base is configured but not open")
    if limiter is not None:
        problem = await limiter.ping()
        if problem:
            reasons.append(problem)
    return reasons
