"""Structured answers: ask for JSON, validate it with a pydantic model, retry once with the error.

The model is shown the JSON schema in the prompt (:func:`schema_instruction`) and, when every
candidate supports it, asked for JSON mode. An answer that is not valid JSON, or that the model
rejects, is sent back once with the error appended to the conversation; a second failure raises
:class:`JobOutputError`. Each job helper decides what that means for it: ``chat_suggest``
escalates to a human (a safe output marked ``fallback=True``); the other helpers let the error
propagate, since an invented score or transcript would be a fake success.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from majordome._client import Majordome
from majordome._errors import DeadlineExceeded, MajordomeError
from majordome._types import Answer, Request
from majordome.models.messages import Message

__all__ = ["JobOutputError", "Structured", "ask_structured", "schema_instruction"]

M = TypeVar("M", bound=BaseModel)

_MAX_ERROR_CHARS = 1200


class JobOutputError(MajordomeError):
    """The model's answer was not valid for the job's schema, twice.

    ``errors`` holds the problem found in each attempt; ``trace_ids`` the trace of each call.
    The model's raw text is kept out of the message (it may quote a fan) and out of the object.
    """

    def __init__(self, schema: str, errors: Sequence[str], trace_ids: Sequence[str]) -> None:
        self.schema = schema
        self.errors = tuple(errors)
        self.trace_ids = tuple(trace_ids)
        super().__init__(f"no valid {schema} after {len(self.errors)} attempt(s): {self.errors[-1]}")


@dataclass(frozen=True)
class Structured(Generic[M]):
    """A validated answer, with every call made to get it (one, or two after a retry)."""

    value: M
    answers: tuple[Answer, ...]
    retry_errors: tuple[str, ...] = ()

    @property
    def answer(self) -> Answer:
        return self.answers[-1]

    @property
    def retried(self) -> bool:
        return len(self.answers) > 1


def schema_instruction(schema: type[BaseModel]) -> str:
    """The prompt paragraph asking for one JSON object following ``schema``."""
    return (
        "Answer with one JSON object and nothing else (no prose, no code fence), following this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), separators=(",", ":"), ensure_ascii=False)
    )


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


def _json_text(text: str) -> str:
    """The JSON object in ``text``: models sometimes wrap it in a code fence or a sentence."""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def _parse(text: str, schema: type[M], check: Callable[[M], None] | None) -> M | str:
    """The validated value, or a one-line description of what is wrong with ``text``."""
    try:
        data = json.loads(_json_text(text))
    except json.JSONDecodeError as exc:
        return f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'the object'}: {e['msg']}" for e in exc.errors())
        return f"the JSON does not follow the schema: {problems}"[:_MAX_ERROR_CHARS]
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            return f"the JSON does not follow the instructions: {exc}"[:_MAX_ERROR_CHARS]
    return value


async def ask_structured(
    mj: Majordome,
    request: Request,
    schema: type[M],
    *,
    check: Callable[[M], None] | None = None,
) -> Structured[M]:
    """Ask ``request`` and validate the answer as ``schema`` (then ``check``, which raises
    ``ValueError`` for what a schema cannot say, e.g. a count).

    On an invalid answer, asks once more with the model's answer and the error appended to the
    conversation, within what is left of the request's deadline (``deadline_s``, or the job
    type's). Raises :class:`JobOutputError` when the second answer is invalid too, and
    :class:`DeadlineExceeded` when no time is left for the retry.
    """
    deadline_s = request.deadline_s or mj.config.deadline_for(request.job_type)
    started = time.monotonic()
    first = await mj.ask(request.model_copy(update={"deadline_s": deadline_s}))
    parsed = _parse(first.text, schema, check)
    if not isinstance(parsed, str):
        return Structured(parsed, (first,))
    error = parsed
    remaining = deadline_s - (time.monotonic() - started)
    if remaining <= 0:
        raise DeadlineExceeded(deadline_s)
    retry_messages = [
        *request.messages,
        Message(role="assistant", content=first.text or "(empty answer)"),
        Message(
            role="user",
            content=f"Your answer was invalid: {error}. Answer again with only the corrected JSON object.",
        ),
    ]
    second = await mj.ask(request.model_copy(update={"messages": retry_messages, "deadline_s": remaining}))
    parsed = _parse(second.text, schema, check)
    if isinstance(parsed, str):
        raise JobOutputError(schema.__name__, [error, parsed], [first.trace_id, second.trace_id])
    return Structured(parsed, (first, second), (error,))
