"""The Azure Functions example's handlers, without the Functions host: parsing, each job type on
scripted models, and the permanent/transient error policy."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from majordome import (
    AllCandidatesFailed,
    BadRequestError,
    BudgetExceeded,
    CapabilityError,
    ConfigurationError,
    DeadlineExceeded,
    Majordome,
    MajordomeConfig,
    ProviderHTTPError,
    ProviderTimeout,
    RetryPolicy,
)
from majordome.feedback import BudgetUnavailable
from majordome.jobs import JobOutputError
from majordome.testing import Reply, ScriptedModel

HANDLERS_PATH = Path(__file__).resolve().parents[2] / "examples" / "azure_functions" / "handlers.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("azure_functions_example_handlers", HANDLERS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


handlers = _load()

DRAFTS = json.dumps(
    {
        "drafts": [
            {"text": "Aww thank you, you made my day!", "tone": "warm"},
            {"text": "You're sweet, tell me more", "tone": "playful"},
            {"text": "Glad you liked it!", "tone": "happy"},
        ],
        "confidence": 0.8,
    }
)
IDEAS = json.dumps({"ideas": [{"title": "Golden hour", "text": "Sunset by the window", "hashtags": ["#mood"]}]})
ANALYSIS = json.dumps(
    {"engagement_score": 72, "sentiment": "positive", "recommendations": ["Post it at 8 pm", "Ask a question"]}
)
VIDEO = json.dumps(
    {"scenes": ["A kitchen", "A cake"], "objects": ["cake"], "summary": "A baking video.", "sentiment": "positive"}
)
FRAME = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nframe").decode()

PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "chat.suggest": ({"fan_id": "fan_7", "fan_message": "Loved your last video!"}, DRAFTS),
    "content.suggest": ({"kind": "post", "tone": "playful", "topic": "a sunset shoot", "count": 1}, IDEAS),
    "content.analyze": ({"content": "New set tonight, who's ready?", "metrics": {"views": 1200}}, ANALYSIS),
    "video.analysis": ({"key_frames": [FRAME]}, VIDEO),
}


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jobId": "job-1",
        "jobType": "content.analyze",
        "creatorId": "creator_42",
        "payload": PAYLOADS["content.analyze"][0],
        "attempt": 1,
        "createdAt": datetime.now(UTC).isoformat(),
        "deadlineMs": 60_000,
    }
    body.update(overrides)
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def scripted(*replies: Reply | str | BaseException, default: Reply | str | None = None) -> Majordome:
    config = MajordomeConfig(retry=RetryPolicy(backoff_base_s=0))  # no sleeping between retries
    return Majordome(config, providers={"*": ScriptedModel(*replies, default=default)}, env={})


@pytest.fixture
async def closing() -> AsyncIterator[list[Majordome]]:
    opened: list[Majordome] = []
    yield opened
    for mj in opened:
        await mj.aclose()


# --- parse_message ---------------------------------------------------------------------------


def test_parse_a_valid_message() -> None:
    parsed = handlers.parse_message(encode(message(extra="ignored")))
    assert (parsed.job_id, parsed.job_type, parsed.creator_id, parsed.attempt) == (
        "job-1",
        "content.analyze",
        "creator_42",
        1,
    )
    assert parsed.deadline_ms == 60_000 and parsed.created_at.tzinfo is not None
    assert 59 < handlers.remaining_s(parsed) <= 60


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_json_is_permanent(body: bytes) -> None:
    with pytest.raises(handlers.PermanentJobError) as caught:
        handlers.parse_message(body)
    assert caught.value.reason == "bad_message"


@pytest.mark.parametrize("field", ["jobId", "jobType", "creatorId", "payload", "attempt", "createdAt", "deadlineMs"])
def test_a_missing_field_is_permanent_and_named(field: str) -> None:
    body = message()
    del body[field]
    with pytest.raises(handlers.PermanentJobError) as caught:
        handlers.parse_message(encode(body))
    assert caught.value.reason == "bad_message" and field in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [{"deadlineMs": 0}, {"attempt": 0}, {"createdAt": "2026-12-04T10:00:00"}, {"payload": "text"}, {"creatorId": ""}],
)
def test_invalid_values_are_permanent(overrides: dict[str, Any]) -> None:
    with pytest.raises(handlers.PermanentJobError) as caught:
        handlers.parse_message(encode(message(**overrides)))
    assert caught.value.reason == "bad_message"


def test_an_unknown_job_type_is_permanent() -> None:
    with pytest.raises(handlers.PermanentJobError) as caught:
        handlers.parse_message(encode(message(jobType="video.upscale")))
    assert caught.value.reason == "unknown_job_type" and "chat.suggest" in str(caught.value)


# --- handle: each job type ---------------------------------------------------------------------


@pytest.mark.parametrize("job_type", sorted(PAYLOADS))
async def test_each_job_type_runs_its_helper_for_the_creator(job_type: str, closing: list[Majordome]) -> None:
    payload, answer = PAYLOADS[job_type]
    model = ScriptedModel(Reply(answer))
    mj = Majordome(MajordomeConfig(), providers={"*": model}, env={})
    closing.append(mj)
    parsed = handlers.parse_message(encode(message(jobType=job_type, payload=payload)))
    result = await handlers.handle(parsed, mj)
    assert result["status"] == "succeeded" and result["jobId"] == "job-1" and result["jobType"] == job_type
    assert result["creatorId"] == "creator_42" and result["attempt"] == 1
    output = result["output"]
    assert output["auto_send"] is False and output["trace_id"]
    (call,) = model.calls
    assert call.context is not None
    json.dumps(result)  # publishable as is
    if job_type == "chat.suggest":
        assert len(output["drafts"]) == 3
    elif job_type == "content.suggest":
        assert output["ideas"][0]["title"] == "Golden hour"
    elif job_type == "content.analyze":
        assert output["engagement_score"] == 72 and output["sentiment"] == "positive"
    else:
        assert output["summary"] == "A baking video." and output["transcript_source"] == "none"


async def test_a_payload_the_helper_refuses_is_permanent(closing: list[Majordome]) -> None:
    mj = scripted()
    closing.append(mj)
    bad = handlers.parse_message(encode(message(jobType="content.suggest", payload={"kind": "tweet", "topic": "x"})))
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(bad, mj)
    assert caught.value.reason == "bad_request"


async def test_a_payload_for_another_tenant_is_refused(closing: list[Majordome]) -> None:
    mj = scripted()
    closing.append(mj)
    payload = {**PAYLOADS["content.analyze"][0], "tenant": "creator_99"}
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(handlers.parse_message(encode(message(payload=payload))), mj)
    assert caught.value.reason == "bad_payload"


# --- deadlines -------------------------------------------------------------------------------


async def test_an_expired_job_is_permanent_and_calls_no_model(closing: list[Majordome]) -> None:
    model = ScriptedModel(default=Reply(ANALYSIS))
    mj = Majordome(MajordomeConfig(), providers={"*": model}, env={})
    closing.append(mj)
    old = (datetime.now(UTC) - timedelta(seconds=120)).isoformat()
    parsed = handlers.parse_message(encode(message(createdAt=old, deadlineMs=90_000)))
    assert handlers.remaining_s(parsed) < -29
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(parsed, mj)
    assert caught.value.reason == "expired" and model.calls == []


async def test_the_deadline_left_bounds_the_run(closing: list[Majordome]) -> None:
    mj = scripted(default=Reply(ANALYSIS, delay_s=5))
    closing.append(mj)
    parsed = handlers.parse_message(encode(message(deadlineMs=300)))
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(parsed, mj)
    assert caught.value.reason == "expired"


# --- transient errors and attempts ----------------------------------------------------------------


async def test_provider_503_everywhere_is_transient(closing: list[Majordome]) -> None:
    mj = scripted(default=Reply(error=ProviderHTTPError("unavailable", status_code=503)))
    closing.append(mj)
    parsed = handlers.parse_message(encode(message(attempt=1)))
    with pytest.raises((AllCandidatesFailed, ProviderHTTPError)):
        await handlers.handle(parsed, mj, max_attempts=3)


async def test_a_transient_failure_on_the_last_attempt_is_given_up(closing: list[Majordome]) -> None:
    mj = scripted(default=Reply(error=ProviderHTTPError("unavailable", status_code=503)))
    closing.append(mj)
    parsed = handlers.parse_message(encode(message(attempt=3)))
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(parsed, mj, max_attempts=3)
    assert caught.value.reason == "attempts_exhausted" and "attempt 3 of 3" in str(caught.value)


async def test_a_spent_budget_is_permanent(closing: list[Majordome]) -> None:
    mj = scripted(default=Reply(error=BudgetExceeded("no budget left", tenant="creator_42")))
    closing.append(mj)
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(handlers.parse_message(encode(message())), mj)
    assert caught.value.reason == "budget_exceeded"


# --- process: what a trigger does -----------------------------------------------------------------


async def test_process_returns_failed_results_for_permanent_errors(
    closing: list[Majordome], caplog: pytest.LogCaptureFixture
) -> None:
    mj = scripted(default=Reply(ANALYSIS))
    closing.append(mj)
    caplog.set_level(logging.ERROR, logger="majordome.examples.azure_functions")
    bad = await handlers.process(b"{oops", mj)
    assert bad == {"jobId": "?", "jobType": "?", "status": "failed", "reason": "bad_message", "error": bad["error"]}
    wrong = await handlers.process(encode(message()), mj, queue_job_type="chat.suggest")
    assert (wrong["jobId"], wrong["status"], wrong["reason"]) == ("job-1", "failed", "wrong_queue")
    assert "job-1" in caplog.text and "wrong_queue" in caplog.text and "Loved" not in caplog.text
    ok = await handlers.process(encode(message()), mj, queue_job_type="content.analyze", delivery_count=1)
    assert ok["status"] == "succeeded"


async def test_process_reraises_transient_errors_and_counts_redeliveries(closing: list[Majordome]) -> None:
    mj = scripted(default=Reply(error=ProviderHTTPError("unavailable", status_code=503)))
    closing.append(mj)
    with pytest.raises((AllCandidatesFailed, ProviderHTTPError)):
        await handlers.process(encode(message(attempt=1)), mj, delivery_count=2, max_attempts=3)
    given_up = await handlers.process(encode(message(attempt=1)), mj, delivery_count=3, max_attempts=3)
    assert given_up["status"] == "failed" and given_up["reason"] == "attempts_exhausted"


# --- the classification of each error kind ---------------------------------------------------------


TRANSIENT: list[Exception] = [
    DeadlineExceeded(90.0),
    BudgetUnavailable("redis unreachable", tenant="creator_42"),
    JobOutputError("_AnalysisAnswer", ["bad", "bad again"], ["t1", "t2"]),
    ConfigurationError("AZURE_AI_KEY is missing"),
    ProviderTimeout("no answer in 30 s"),
    RuntimeError("a bug"),
]
PERMANENT: list[tuple[Exception, str]] = [
    (BadRequestError("every message needs content"), "bad_request"),
    (CapabilityError("no candidate reads images"), "bad_request"),
    (BudgetExceeded("spent", tenant="creator_42"), "budget_exceeded"),
]


def _failing(error: Exception) -> Any:
    async def run(mj: Majordome, data: dict[str, Any], speech: object) -> Any:
        raise error

    return run


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
async def test_transient_errors_are_reraised_as_they_are(
    error: Exception, monkeypatch: pytest.MonkeyPatch, closing: list[Majordome]
) -> None:
    mj = scripted()
    closing.append(mj)
    monkeypatch.setitem(handlers.JOB_TYPES, "content.analyze", _failing(error))
    with pytest.raises(type(error)) as caught:
        await handlers.handle(handlers.parse_message(encode(message(attempt=2))), mj, max_attempts=3)
    assert caught.value is error


@pytest.mark.parametrize(("error", "reason"), PERMANENT, ids=lambda e: type(e).__name__)
async def test_permanent_errors_are_not_retried_even_on_the_first_attempt(
    error: Exception, reason: str, monkeypatch: pytest.MonkeyPatch, closing: list[Majordome]
) -> None:
    mj = scripted()
    closing.append(mj)
    monkeypatch.setitem(handlers.JOB_TYPES, "content.analyze", _failing(error))
    with pytest.raises(handlers.PermanentJobError) as caught:
        await handlers.handle(handlers.parse_message(encode(message(attempt=1))), mj, max_attempts=3)
    assert caught.value.reason == reason and caught.value.__cause__ is error
