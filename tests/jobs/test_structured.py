"""ask_structured: JSON validated by a pydantic model, one retry carrying the error, then
JobOutputError; the retry stays within the first call's deadline."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from majordome import Majordome, MajordomeConfig, Request
from majordome.jobs import JobOutputError, ask_structured
from majordome.testing import Reply, ScriptedModel


class Verdict(BaseModel):
    label: str
    score: float


def request(**extra: object) -> Request:
    return Request(
        messages=[{"role": "user", "content": "Classify this."}],  # type: ignore[list-item]
        tenant="t",
        json_mode=True,
        **extra,  # type: ignore[arg-type]
    )


async def test_a_fenced_answer_is_accepted_without_a_retry() -> None:
    model = ScriptedModel(Reply('Here it is:\n```json\n{"label": "ok", "score": 0.5}\n```'))
    async with Majordome(MajordomeConfig(), providers={"*": model}, env={}) as mj:
        result = await ask_structured(mj, request(), Verdict)
    assert result.value == Verdict(label="ok", score=0.5) and not result.retried
    assert len(model.calls) == 1


async def test_the_retry_carries_the_error_and_the_remaining_deadline() -> None:
    model = ScriptedModel(Reply('{"label": "ok"}', delay_s=0.2), Reply('{"label": "ok", "score": 1}'))
    async with Majordome(MajordomeConfig(), providers={"*": model}, env={}) as mj:
        result = await ask_structured(mj, request(deadline_s=5), Verdict)
    assert result.retried and result.retry_errors and "score" in result.retry_errors[0]
    retry = model.calls[1]
    assert retry.messages[-2].role == "assistant" and retry.messages[-2].text == '{"label": "ok"}'
    assert "score: Field required" in retry.messages[-1].text
    assert retry.context is not None and retry.context.deadline_s < 4.9


async def test_a_check_failure_counts_as_invalid() -> None:
    def positive(value: Verdict) -> None:
        if value.score <= 0:
            raise ValueError("score must be positive")

    model = ScriptedModel(Reply('{"label": "a", "score": 0}'), Reply('{"label": "b", "score": -1}'))
    async with Majordome(MajordomeConfig(), providers={"*": model}, env={}) as mj:
        with pytest.raises(JobOutputError) as caught:
            await ask_structured(mj, request(), Verdict, check=positive)
    assert caught.value.schema == "Verdict" and len(caught.value.errors) == 2
    assert all("score must be positive" in e for e in caught.value.errors)
