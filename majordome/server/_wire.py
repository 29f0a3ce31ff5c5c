"""The OpenAI chat-completions wire format: request bodies in, completion objects and chunks out."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from majordome._errors import BadRequestError
from majordome._types import Answer, Request
from majordome._validation import describe

__all__ = ["AUTO_MODEL", "ChatCompletionBody", "FeedbackBody", "chunk", "completion", "error_body", "majordome_field"]

AUTO_MODEL = "majordome"
"""The model name that asks for routing (as does leaving ``model`` out)."""

_HINTS = ("job_type", "intent", "language")


class _ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"] = "text"


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """An OpenAI chat-completions request. Sampling fields majordome does not use (``top_p``,
    penalties, ``seed``...) are accepted and ignored; what would change the answer's shape
    (tools, ``n`` > 1) is refused. Majordome hints (``job_type``, ``intent``, ``language``) come
    as top-level extra fields or in ``metadata``."""

    model_config = ConfigDict(extra="allow")

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = None
    response_format: _ResponseFormat | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    job_type: str | None = None
    intent: str | None = None
    language: str | None = None

    @classmethod
    def parse(cls, raw: bytes) -> ChatCompletionBody:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadRequestError("the body must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadRequestError(describe(exc, "body")) from exc

    def to_request(self, tenant: str, trace_id: str, max_messages: int) -> Request:
        """The :class:`Request` this body asks for, for ``tenant`` (from the API key, never the body)."""
        if len(self.messages) > max_messages:
            raise BadRequestError(f"too many messages: {len(self.messages)} (at most {max_messages})")
        if self.n not in (None, 1):
            raise BadRequestError("n must be 1: one choice per request")
        if self.tools or self.functions:
            raise BadRequestError("tools and functions are not supported")
        if self.response_format is not None and self.response_format.type == "json_schema":
            raise BadRequestError("response_format json_schema is not supported; use json_object")
        metadata = dict(self.metadata or {})
        hints: dict[str, str | None] = {}
        for name in _HINTS:  # a top-level hint wins over the same one in metadata
            in_metadata = metadata.pop(name, None)
            hints[name] = getattr(self, name) or in_metadata
        metadata.pop("tenant", None)  # the tenant is the API key's
        model = None if self.model in (None, "", AUTO_MODEL) else self.model
        return Request.parse(
            dict(
                messages=[_message(m) for m in self.messages],
                tenant=tenant,
                model=model,
                user=self.user,
                max_output_tokens=self.max_completion_tokens or self.max_tokens,
                temperature=self.temperature,
                json_mode=self.response_format is not None and self.response_format.type == "json_object",
                trace_id=trace_id,
                metadata=metadata,
                **hints,
            )
        )


def _message(data: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI message as majordome's: ``developer`` is a system message; ``name`` is dropped."""
    role = data.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant"):
        raise BadRequestError(f"message role {role!r} is not supported (system, developer, user, assistant)")
    content = data.get("content")
    if content is None:
        raise BadRequestError("every message needs content")
    return {"role": role, "content": content}


class FeedbackBody(BaseModel):
    """``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, max_length=200)
    kind: str
    value: float | bool | str
    draft: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)

    @classmethod
    def parse(cls, raw: bytes) -> FeedbackBody:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise BadRequestError(describe(exc, "body")) from exc


def majordome_field(answer: Answer) -> dict[str, Any]:
    """How the answer was decided and what it cost (the ``majordome`` field of a response)."""
    d = answer.decision
    return {
        "trace_id": answer.trace_id,
        "model": answer.model,
        "served_by": answer.served_by,
        "substituted": answer.substituted,
        "cost_usd": answer.cost_usd,
        "decision": {
            "chosen": d.chosen,
            "reason": d.reason,
            "chain": list(d.chain),
            "intent": d.intent,
            "language": d.language,
            "explored": d.explored,
        },
    }


def usage_field(answer: Answer) -> dict[str, int]:
    u = answer.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens}


def completion(answer: Answer) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{answer.trace_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "finish_reason": answer.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_field(answer),
        "majordome": majordome_field(answer),
    }


def chunk(
    trace_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion.chunk`` object."""
    choices = (
        [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}] if delta is not None else []
    )
    return {
        "id": f"chatcmpl-{trace_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
