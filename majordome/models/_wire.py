"""What the chat-completions wire formats share (OpenAI and Azure AI Inference speak the same
JSON): message encoding, request bodies, ``Retry-After`` parsing, safe error messages."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from majordome._errors import ProviderError, ProviderResponseError
from majordome._logging import redact
from majordome.models.base import ModelRequest, ModelResponse, StreamChunk
from majordome.models.messages import AudioPart, ImagePart, Message, TextPart, Usage

_MAX_DETAIL = 200


def encode_message(message: Message) -> dict[str, Any]:
    """A message in the chat-completions JSON shape."""
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
        elif isinstance(part, AudioPart):
            parts.append({"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}})
    return {"role": message.role, "content": parts}


def request_body(deployment: str, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body of a chat-completions call."""
    body: dict[str, Any] = {
        "model": deployment,
        "messages": [encode_message(m) for m in request.messages],
        "max_tokens": request.max_output_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(request.json_schema), "strict": True},
        }
    elif request.json_mode:
        body["response_format"] = {"type": "json_object"}
    if request.stop:
        body["stop"] = list(request.stop)
    if stream:
        body["stream"] = True
    return body


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``x-ms-retry-after-ms`` or ``Retry-After``."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = lowered.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_detail(body: Any) -> str:
    """A short, redacted description of an error body: the provider's own message if any."""
    message: Any = None
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            message = body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
    if not message:
        return ""
    text = redact(" ".join(str(message).split()))
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


# A malformed 2xx answer shows up as one of these while its JSON is read.
_SHAPE_ERRORS = (LookupError, TypeError, AttributeError, ValueError)


def _malformed(deployment: str, model_id: str, exc: BaseException) -> ProviderResponseError:
    return ProviderResponseError(
        f"{deployment} sent a malformed answer: {type(exc).__name__}", model=model_id, deployment=deployment
    )


def _usage(raw: Any) -> Usage | None:
    if not raw:
        return None
    return Usage(int(raw["prompt_tokens"]), int(raw["completion_tokens"]))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"content is {type(value).__name__}, not text")
    return value


def parse_completion(payload: Any, *, served_by: str, deployment: str, model_id: str) -> ModelResponse:
    """A chat-completions answer (a mapping: JSON dict or SDK model) as a :class:`ModelResponse`;
    anything that breaks the wire format raises :class:`ProviderResponseError`."""
    try:
        choice = payload["choices"][0]
        message = choice["message"]
        content = message.get("content")
        if content is None and not message.get("tool_calls"):
            raise ValueError("no content")
        reasoning = message.get("reasoning_content")
        finish = choice.get("finish_reason")
        return ModelResponse(
            text=_text(content),
            served_by=served_by,
            finish_reason=str(finish) if finish is not None else None,
            usage=_usage(payload.get("usage")),
            reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
        )
    except _SHAPE_ERRORS as exc:
        raise _malformed(deployment, model_id, exc) from exc


def parse_chunk(payload: Any, *, deployment: str, model_id: str) -> StreamChunk | None:
    """One streamed event as a :class:`StreamChunk` (None when it carries nothing)."""
    try:
        usage = _usage(payload.get("usage"))
        choices = payload.get("choices") or []
        if not choices:
            return StreamChunk(usage=usage) if usage is not None else None
        choice = choices[0]
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content")
        finish = choice.get("finish_reason")
        return StreamChunk(
            text=_text(delta.get("content")),
            reasoning=reasoning if isinstance(reasoning, str) else "",
            finish_reason=str(finish) if finish is not None else None,
            usage=usage,
        )
    except _SHAPE_ERRORS as exc:
        raise _malformed(deployment, model_id, exc) from exc


async def relay_chunks(
    open_events: Callable[[], Awaitable[Any]],
    errors: tuple[type[BaseException], ...],
    translate: Callable[[BaseException], ProviderError],
    *,
    deployment: str,
    model_id: str,
) -> AsyncIterator[StreamChunk]:
    """An SDK's stream of events as chunks: ``open_events`` starts the call, transport
    ``errors`` are translated, each event is parsed with :func:`parse_chunk`, and the SDK's
    stream is closed however the reading ends (a reader that stops early included)."""
    try:
        events = await open_events()
    except errors as exc:
        raise translate(exc) from exc
    close = getattr(events, "aclose", None) or events.close
    try:
        while True:
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return
            except errors as exc:
                raise translate(exc) from exc
            chunk = parse_chunk(event, deployment=deployment, model_id=model_id)
            if chunk is not None:
                yield chunk
    finally:
        with contextlib.suppress(*errors):
            await close()


T = TypeVar("T")


class PerLoop(Generic[T]):
    """One client per event loop: async HTTP clients are bound to the loop that made them, and
    majordome serves both the caller's loop (``ask``) and its own (``ask_sync``)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        item = self._items.get(loop)
        if item is None:
            item = self._items[loop] = self._factory()
        return item

    def pop_current(self) -> T | None:
        """Forget (and return) the current loop's item, to be closed by the caller."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._items.pop(loop, None)
