"""Plain functions behind the Azure Functions triggers: parse a platform job message, run the
majordome job helper for its ``jobType``, and classify failures as permanent or transient.

Nothing here imports ``azure.functions``: the triggers in ``function_app.py`` are thin wrappers,
and these functions are tested without the Functions host.

Error policy (see README.md):

- **permanent** — a malformed message, an unknown ``jobType`` or one sent to another job type's
  queue, a payload the job helper refuses (:class:`~majordome.BadRequestError`), a spent budget
  (:class:`~majordome.BudgetExceeded`), a job whose deadline has passed, or a transient error on
  the last allowed attempt: :func:`handle` raises :class:`PermanentJobError`, and :func:`process`
  logs the reason and returns a ``"failed"`` result, so the trigger returns normally and the
  message is completed (never retried).
- **transient** — provider failures, every candidate failing, majordome's own deadline, the budget
  store or event store unreachable, an unusable model answer, a configuration error, and any
  unexpected exception: re-raised, so Service Bus redelivers the message (and dead-letters it
  after the queue's ``MaxDeliveryCount``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from majordome import BadRequestError, BudgetExceeded, Majordome
from majordome.jobs import (
    ChatSuggestInput,
    ContentAnalyzeInput,
    ContentSuggestInput,
    JobOutput,
    SpeechBatchClient,
    VideoAnalysisInput,
    chat_suggest,
    content_analyze,
    content_suggest,
    video_analysis,
)

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "JOB_TYPES",
    "JobMessage",
    "PermanentJobError",
    "handle",
    "parse_message",
    "process",
    "remaining_s",
]

log = logging.getLogger("majordome.examples.azure_functions")

DEFAULT_MAX_ATTEMPTS = 5
"""A transient failure on this attempt (or a later one) is given up as permanent."""


class PermanentJobError(Exception):
    """The job cannot succeed by being retried. ``reason`` is a short code for logs and results."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class JobMessage(BaseModel):
    """The platform's Service Bus message: ``{jobId, jobType, creatorId, payload, attempt,
    createdAt, deadlineMs}`` (camelCase on the wire; unknown keys are ignored)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    job_id: str = Field(min_length=1, max_length=200)
    job_type: str = Field(min_length=1, max_length=100)
    creator_id: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any]
    attempt: int = Field(ge=1)
    """1 for the first try; the platform increments it when it re-enqueues a job."""
    created_at: AwareDatetime
    deadline_ms: int = Field(gt=0)


Runner = Callable[[Majordome, dict[str, Any], SpeechBatchClient | None], Awaitable[JobOutput]]


async def _chat_suggest(mj: Majordome, data: dict[str, Any], _speech: SpeechBatchClient | None) -> JobOutput:
    return await chat_suggest(mj, ChatSuggestInput(**data))


async def _content_suggest(mj: Majordome, data: dict[str, Any], _speech: SpeechBatchClient | None) -> JobOutput:
    return await content_suggest(mj, ContentSuggestInput(**data))


async def _content_analyze(mj: Majordome, data: dict[str, Any], _speech: SpeechBatchClient | None) -> JobOutput:
    return await content_analyze(mj, ContentAnalyzeInput(**data))


async def _video_analysis(mj: Majordome, data: dict[str, Any], speech: SpeechBatchClient | None) -> JobOutput:
    return await video_analysis(mj, VideoAnalysisInput(**data), speech=speech)


JOB_TYPES: dict[str, Runner] = {
    "chat.suggest": _chat_suggest,
    "content.suggest": _content_suggest,
    "content.analyze": _content_analyze,
    "video.analysis": _video_analysis,
}

# Errors a retry cannot fix. Everything else is retried (bounded by the attempt count).
_PERMANENT: tuple[tuple[type[BaseException], str], ...] = (
    (BudgetExceeded, "budget_exceeded"),
    (BadRequestError, "bad_request"),
)


def parse_message(body: bytes) -> JobMessage:
    """The message in ``body`` (UTF-8 JSON), validated. Raises :class:`PermanentJobError`
    (``bad_message`` or ``unknown_job_type``) when it cannot be a job."""
    try:
        message = JobMessage.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
        raise PermanentJobError("bad_message", f"invalid job message: {problems}") from exc
    if message.job_type not in JOB_TYPES:
        raise PermanentJobError(
            "unknown_job_type", f"unknown jobType {message.job_type!r}; known: {', '.join(sorted(JOB_TYPES))}"
        )
    return message


def remaining_s(message: JobMessage, now: datetime | None = None) -> float:
    """Seconds left before the job's deadline: ``deadlineMs`` minus the time since ``createdAt``."""
    elapsed = ((now or datetime.now(UTC)) - message.created_at).total_seconds()
    return message.deadline_ms / 1000 - elapsed


async def handle(
    message: JobMessage,
    mj: Majordome,
    *,
    attempt: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    speech: SpeechBatchClient | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the job helper for ``message.job_type`` with ``creatorId`` as the tenant, within what
    is left of the job's deadline, and return the result to publish.

    Raises :class:`PermanentJobError` when the job cannot succeed (see the module's policy),
    including a transient failure when ``attempt`` (default ``message.attempt``) has reached
    ``max_attempts``; re-raises transient errors otherwise.
    """
    runner = JOB_TYPES.get(message.job_type)
    if runner is None:
        raise PermanentJobError("unknown_job_type", f"unknown jobType {message.job_type!r}")
    left = remaining_s(message, now)
    if left <= 0:
        raise PermanentJobError("expired", f"the job's deadline passed {-left:.1f} s ago")
    if message.payload.get("tenant", message.creator_id) != message.creator_id:
        raise PermanentJobError("bad_payload", "payload.tenant differs from creatorId")
    data = {**message.payload, "tenant": message.creator_id}
    attempt = message.attempt if attempt is None else attempt
    started = time.monotonic()
    try:
        async with asyncio.timeout(left) as clock:
            output = await runner(mj, data, speech)
    except TimeoutError as exc:
        if clock.expired():
            raise PermanentJobError("expired", f"the job's deadline passed while it ran ({left:.1f} s)") from exc
        raise _give_up_or_retry(exc, attempt, max_attempts) from exc
    except Exception as exc:
        for kind, reason in _PERMANENT:
            if isinstance(exc, kind):
                raise PermanentJobError(reason, f"{type(exc).__name__}: {exc}") from exc
        raise _give_up_or_retry(exc, attempt, max_attempts) from exc
    return {
        "jobId": message.job_id,
        "jobType": message.job_type,
        "creatorId": message.creator_id,
        "status": "succeeded",
        "attempt": attempt,
        "durationMs": round((time.monotonic() - started) * 1000),
        "output": output.model_dump(mode="json"),
    }


def _give_up_or_retry(error: Exception, attempt: int, max_attempts: int) -> Exception:
    if attempt >= max_attempts:
        return PermanentJobError(
            "attempts_exhausted", f"attempt {attempt} of {max_attempts} failed: {type(error).__name__}: {error}"
        )
    return error


async def process(
    body: bytes,
    mj: Majordome,
    *,
    queue_job_type: str | None = None,
    delivery_count: int | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    speech: SpeechBatchClient | None = None,
) -> dict[str, Any]:
    """What a trigger does with a message: the result of :func:`handle`, or a ``"failed"`` result
    (logged) for a permanent failure; a transient failure is logged and re-raised.

    ``queue_job_type``: the job type this queue carries (a message of another type is permanent).
    ``delivery_count``: Service Bus's count of deliveries of this message (1 the first time); the
    attempt is the platform's ``attempt`` plus the redeliveries.
    """
    job_id, job_type = _peek(body)
    try:
        message = parse_message(body)
        if queue_job_type is not None and message.job_type != queue_job_type:
            raise PermanentJobError(
                "wrong_queue", f"a {message.job_type!r} job on the {queue_job_type!r} queue is not processed"
            )
        attempt = message.attempt + max(0, (delivery_count or 1) - 1)
        return await handle(message, mj, attempt=attempt, max_attempts=max_attempts, speech=speech)
    except PermanentJobError as exc:
        log.error("job %s (%s) failed permanently, not retried: %s: %s", job_id, job_type, exc.reason, exc)
        return {"jobId": job_id, "jobType": job_type, "status": "failed", "reason": exc.reason, "error": str(exc)}
    except Exception as exc:
        log.warning("job %s (%s) failed, to be retried: %s: %s", job_id, job_type, type(exc).__name__, exc)
        raise


def _peek(body: bytes) -> tuple[str, str]:
    """The job id and type for logs, from a body that may not be valid."""
    try:
        raw = json.loads(body)
    except ValueError:
        return "?", "?"
    if not isinstance(raw, dict):
        return "?", "?"
    return str(raw.get("jobId", "?"))[:200], str(raw.get("jobType", "?"))[:100]
