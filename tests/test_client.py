from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from majordome import (
    AllCandidatesFailed,
    BadRequestError,
    CapabilityError,
    Completed,
    DeadlineExceeded,
    Majordome,
    MajordomeConfig,
    ProviderHTTPError,
    ReasoningDelta,
    Request,
    RetryPolicy,
    StreamInterrupted,
    TextDelta,
    UnknownModelError,
    Usage,
)
from majordome.testing import Reply, ScriptedModel


def make(*replies: Any, default: Any = None, **config: Any) -> tuple[Majordome, ScriptedModel]:
    scripted = ScriptedModel(*replies, default=default)
    config.setdefault("retry", RetryPolicy(backoff_base_s=0))
    return Majordome(MajordomeConfig(**config), providers={"*": scripted}, env={}), scripted


def req(text: str = "Hello!", **kwargs: Any) -> dict[str, Any]:
    """A request whose route does not depend on the classifier (tests of routing live in tests/router)."""
    hints: dict[str, Any] = {"language": "en"}
    if "job_type" not in kwargs and "intent" not in kwargs:
        hints["intent"] = "general_help"
    return {"messages": [{"role": "user", "content": text}], "tenant": "creator_42", **hints, **kwargs}


async def test_ask_answers_with_model_usage_cost_and_trace() -> None:
    mj, scripted = make(Reply("Hi there!", usage=Usage(20, 4)))
    answer = await mj.ask(req(job_type="chat.suggest", trace_id="trace-1"))
    assert answer.text == "Hi there!"
    assert answer.model == "llama-3.3-70b"
    assert answer.served_by == "scripted" and not answer.substituted
    assert answer.usage == Usage(20, 4)
    assert answer.cost_usd == pytest.approx((20 * 0.99 + 4 * 0.99) / 1e6)
    assert answer.trace_id == "trace-1"
    assert answer.latency_ms >= 0
    assert [a.outcome for a in answer.attempts] == ["ok"]
    assert answer.decision.chosen == "llama-3.3-70b"
    assert answer.finish_reason == "stop"
    assert scripted.calls[0].messages[0].text == "Hello!"
    assert scripted.calls[0].context is not None and scripted.calls[0].context.deadline_s == 90.0
    json.dumps(answer.to_dict())  # serialisable for logs and the CLI


async def test_a_trace_id_is_generated_when_none_is_given() -> None:
    mj, _ = make(default="ok")
    first, second = await mj.ask(req()), await mj.ask(req())
    assert first.trace_id and second.trace_id and first.trace_id != second.trace_id


async def test_fallback_and_retries_show_in_the_answer() -> None:
    scripted = {
        "deepseek-v3": ScriptedModel(default=Reply(error=ProviderHTTPError("down", status_code=503))),
        "mistral-large": ScriptedModel("from mistral", label="mistral-double"),
    }
    mj = Majordome(
        MajordomeConfig(retry=RetryPolicy(backoff_base_s=0)), providers={**scripted, "*": ScriptedModel()}, env={}
    )
    answer = await mj.ask(req())
    assert answer.model == "mistral-large" and answer.served_by == "mistral-double"
    assert [(a.model, a.outcome) for a in answer.attempts] == [
        ("deepseek-v3", "ProviderHTTPError"),
        ("deepseek-v3", "ProviderHTTPError"),
        ("deepseek-v3", "ProviderHTTPError"),
        ("mistral-large", "ok"),
    ]
    assert answer.cost_usd > 0


async def test_every_candidate_failing_raises_one_error_with_each_cause() -> None:
    mj, _ = make(default=Reply(error=ProviderHTTPError("bad request", status_code=400)))
    with pytest.raises(AllCandidatesFailed) as info:
        await mj.ask(req())
    assert [m for m, _ in info.value.causes] == ["deepseek-v3", "mistral-large", "llama-3.3-70b"]


async def test_stream_gives_deltas_then_the_whole_answer() -> None:
    mj, _ = make(Reply("one two three", usage=Usage(7, 3)))
    events = [e async for e in mj.stream(req())]
    assert [type(e) for e in events] == [TextDelta, TextDelta, TextDelta, Completed]
    final = events[-1]
    assert isinstance(final, Completed)
    assert "".join(e.text for e in events[:-1] if isinstance(e, TextDelta)) == final.answer.text == "one two three"
    assert final.answer.usage == Usage(7, 3)
    assert final.answer.cost_usd == pytest.approx((7 * 1.14 + 3 * 4.56) / 1e6)
    assert final.answer.finish_reason == "stop"


async def test_reasoning_is_never_mixed_into_the_text() -> None:
    mj, _ = make(default=Reply("84", reasoning="12 * 7 is 84"))
    answer = await mj.ask(req(intent="reasoning"))
    assert answer.model == "deepseek-r1"
    assert answer.text == "84" and answer.reasoning == "12 * 7 is 84"
    events = [e async for e in mj.stream(req(intent="reasoning"))]
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "12 * 7 is 84"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "84"
    assert "think" not in "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_stream_interrupted_after_first_token_keeps_partial_text() -> None:
    mj, _ = make(Reply("a b c d", fail_after_chunks=2, error=ProviderHTTPError("x", status_code=500)))
    received = []
    with pytest.raises(StreamInterrupted) as info:
        async for event in mj.stream(req()):
            if isinstance(event, TextDelta):
                received.append(event.text)
    assert info.value.partial_text == "a b" == "".join(received)


def test_sync_and_async_give_the_same_answers() -> None:
    script = [Reply("first", usage=Usage(3, 1)), Reply("second", usage=Usage(3, 1))]
    sync_mj, _ = make(*script)
    async_mj, _ = make(*script)
    with sync_mj:
        sync_answers = [sync_mj.ask_sync(req(trace_id="a")), sync_mj.ask_sync(req(trace_id="b", language="fr"))]

    async def run() -> list[Any]:
        return [await async_mj.ask(req(trace_id="a")), await async_mj.ask(req(trace_id="b", language="fr"))]

    async_answers = asyncio.run(run())
    for s, a in zip(sync_answers, async_answers, strict=True):
        assert (s.text, s.model, s.usage, s.cost_usd, s.trace_id, s.decision) == (
            a.text,
            a.model,
            a.usage,
            a.cost_usd,
            a.trace_id,
            a.decision,
        )
    assert [a.text for a in sync_answers] == ["first", "second"]


def test_stream_sync_matches_stream() -> None:
    sync_mj, _ = make(Reply("x y z", usage=Usage(2, 3)))
    async_mj, _ = make(Reply("x y z", usage=Usage(2, 3)))
    with sync_mj:
        sync_events = list(sync_mj.stream_sync(req(trace_id="t")))

    async def run() -> list[Any]:
        return [e async for e in async_mj.stream(req(trace_id="t"))]

    async_events = asyncio.run(run())
    assert [type(e) for e in sync_events] == [type(e) for e in async_events]
    assert [e.text for e in sync_events[:-1]] == [e.text for e in async_events[:-1]]
    assert sync_events[-1].answer.usage == async_events[-1].answer.usage


def test_errors_cross_the_sync_boundary_unchanged() -> None:
    mj, _ = make()
    with mj, pytest.raises(UnknownModelError):
        mj.ask_sync(req(model="gpt-17"))


async def test_deadline_of_the_request_is_enforced() -> None:
    mj, _ = make(default=Reply("late", delay_s=2))
    with pytest.raises(DeadlineExceeded) as info:
        await asyncio.wait_for(mj.ask(req(deadline_s=0.2)), 2)
    assert info.value.deadline_s == 0.2


async def test_job_type_sets_the_default_deadline() -> None:
    mj, scripted = make(default="ok", deadlines_s={"video.analysis": 120.0}, default_deadline_s=30.0)
    await mj.ask(req(job_type="video.analysis"))
    await mj.ask(req(job_type="other.job"))
    assert [c.context.deadline_s for c in scripted.calls if c.context] == [120.0, 30.0]


@pytest.mark.parametrize(
    ("request_data", "fragment"),
    [
        ({"messages": [], "tenant": "t"}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}], "tenant": "t"}, "no text and no attachment"),
        ({"messages": [{"role": "robot", "content": "hi"}], "tenant": "t"}, "role"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tenant": "t"},
            "last message",
        ),
        ({"messages": [{"role": "user", "content": "hi"}]}, "tenant"),
        ({"messages": [{"role": "user", "content": "hi"}], "tenant": "t", "temperature": 5}, "temperature"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/x"}}]}
                ],
                "tenant": "t",
            },
            "image",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "tenant": "t", "colour": "blue"}, "colour"),
    ],
)
async def test_bad_requests_get_a_typed_error_and_nothing_is_called(
    request_data: dict[str, Any], fragment: str
) -> None:
    mj, scripted = make(default="never")
    with pytest.raises(BadRequestError, match=fragment):
        await mj.ask(request_data)
    assert scripted.calls == []


async def test_a_bad_request_does_not_disturb_others() -> None:
    mj, _ = make(default="fine")
    results = await asyncio.gather(mj.ask(req()), mj.ask({"messages": []}), mj.ask(req()), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Answer", "BadRequestError", "Answer"]


async def test_openai_style_image_parts_reach_a_multimodal_model() -> None:
    mj, scripted = make(default="a cat")
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    answer = await mj.ask({"messages": [{"role": "user", "content": content}], "tenant": "t"})
    assert answer.model == "phi-4-multimodal"
    assert scripted.calls[0].messages[0].content[1].url.startswith("data:image/png")  # type: ignore[union-attr]


def test_offline_image_request_explains_the_substitution() -> None:
    mj = Majordome(MajordomeConfig(offline="always"), env={})
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
    with pytest.raises(CapabilityError, match=r"local model .* reads text only"):
        mj.route({"messages": [{"role": "user", "content": [image]}], "tenant": "t"})


async def test_logs_one_event_per_call_and_request_without_bodies(caplog: pytest.LogCaptureFixture) -> None:
    mj, _ = make(Reply(error=ProviderHTTPError("flaky", status_code=500)), Reply("the secret answer"))
    with caplog.at_level(logging.INFO, logger="majordome"):
        await mj.ask(req("my private message to a fan", trace_id="tr-9"))
    events = [json.loads(r.getMessage()) for r in caplog.records]
    assert [e["event"] for e in events] == ["model.call", "model.call", "request.done"]
    assert all(e["trace_id"] == "tr-9" for e in events)
    assert events[0]["outcome"] == "ProviderHTTPError" and events[1]["outcome"] == "ok"
    dumped = caplog.text
    assert "private message" not in dumped and "secret answer" not in dumped


async def test_bodies_are_logged_only_when_the_operator_asks(caplog: pytest.LogCaptureFixture) -> None:
    mj, _ = make(Reply("the answer"), log_message_bodies=True)
    with caplog.at_level(logging.INFO, logger="majordome"):
        await mj.ask(req("the question"))
    done = [json.loads(r.getMessage()) for r in caplog.records][-1]
    assert done["messages"][0]["content"] == "the question" and done["answer_text"] == "the answer"


async def test_failed_request_is_logged_with_its_error(caplog: pytest.LogCaptureFixture) -> None:
    mj, _ = make(default=Reply(error=ProviderHTTPError("nope", status_code=401)))
    with caplog.at_level(logging.INFO, logger="majordome"), pytest.raises(AllCandidatesFailed):
        await mj.ask(req(trace_id="tr-fail"))
    failed = json.loads(caplog.records[-1].getMessage())
    assert failed["event"] == "request.failed" and failed["error"] == "AllCandidatesFailed"
    assert failed["trace_id"] == "tr-fail"


def test_route_explains_without_calling() -> None:
    mj, scripted = make()
    decision = mj.route(Request(messages=[{"role": "user", "content": "Bonjour"}], tenant="t", language="fr"))
    assert decision.chosen == "mistral-large" and decision.language == "fr"
    assert "mistral-large has the best utility" in decision.reason
    assert scripted.calls == []


def test_models_lists_the_catalogue_with_what_serves_it() -> None:
    mj, _ = make()
    rows = {row.id: row for row in mj.models()}
    assert rows["deepseek-v3"].served_by == "scripted"
    assert rows["azure-speech-batch"].served_by is None and rows["azure-speech-batch"].kind == "transcription"
