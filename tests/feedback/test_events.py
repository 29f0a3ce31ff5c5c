"""Feedback events: their checks, their JSON lines (validated on the way back, errors naming the
line), and the rows they give the platform's cost table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from majordome import MajordomeError
from majordome.feedback.events import (
    CallEvent,
    CostRow,
    DecisionEvent,
    EventDecodeError,
    FeedbackEvent,
    decode_event,
    encode_json,
)
from majordome.models.base import Attempt
from majordome.models.messages import Usage
from majordome.router.decision import CandidateScore, RoutingDecision

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def decision_event(**overrides: object) -> DecisionEvent:
    values: dict[str, object] = {
        "trace_id": "trace-1",
        "tenant": "creator_42",
        "chosen": "Llama-3.3-70B",
        "chain": ("Llama-3.3-70B", "DeepSeek-V3"),
        "policy": "priors/3",
        "job_type": "chat.suggest",
        "intent": "fan_reply",
        "language": "fr",
        "candidates": ({"model": "Llama-3.3-70B", "quality": 0.8, "cost_usd": 0.0004, "latency_s": 1.2},),
        "explored": True,
        "features": {"intent_confidence": 0.91, "prompt_tokens": 42},
        "prompt": "Salut ! Tu fais quoi ce soir ?",
        "created_at": T0,
    }
    values.update(overrides)
    return DecisionEvent(**values)  # type: ignore[arg-type]


def test_each_event_round_trips_through_a_json_line() -> None:
    events = [
        decision_event(),
        CallEvent(
            trace_id="trace-1",
            tenant="creator_42",
            model="Llama-3.3-70B",
            deployment="llama-eu",
            attempts=2,
            input_tokens=120,
            output_tokens=30,
            cost_usd=0.000149,
            latency_s=1.7,
            status="error",
            error_class="ProviderTimeout",
            served_by="llama-eu",
            created_at=T0,
        ),
        FeedbackEvent(trace_id="trace-1", kind="edit", value=0.6, detail={"distance": 14}, reward=0.6, created_at=T0),
    ]
    for event in events:
        line = event.to_json()
        assert "\n" not in line
        assert decode_event(line) == event


def test_an_event_keeps_its_id_and_gets_a_fresh_one_by_default() -> None:
    first, second = (
        FeedbackEvent(trace_id="t", kind="thumbs", value=1),
        FeedbackEvent(trace_id="t", kind="thumbs", value=1),
    )
    assert first.event_id != second.event_id and len(first.event_id) == 32
    assert decode_event(first.to_json()).event_id == first.event_id
    given = FeedbackEvent(trace_id="t", kind="thumbs", value=1, event_id="platform-feedback-77")
    assert decode_event(given.to_json()).event_id == "platform-feedback-77"


def test_times_are_utc_and_a_naive_time_is_refused() -> None:
    paris = timezone(timedelta(hours=1))
    event = decision_event(created_at=datetime(2026, 3, 1, 13, 0, tzinfo=paris))
    assert event.created_at == T0 and event.created_at.tzinfo is UTC
    assert CallEvent(trace_id="t", tenant="c", model="m").created_at.tzinfo is UTC
    with pytest.raises(ValueError, match="no time zone"):
        decision_event(created_at=datetime(2026, 3, 1, 12, 0))


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("rating", 0, "between 1 and 5"),
        ("rating", 6, "between 1 and 5"),
        ("thumbs", 0.5, "1 \\(up"),
        ("edit", 1.5, "share of the text"),
        ("conversion", 2, "1 \\(up / converted\\) or 0 or -1"),
        ("revenue", -3, ">= 0"),
        ("rating", float("nan"), "finite"),
    ],
)
def test_feedback_values_are_checked_by_kind(kind: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeedbackEvent(trace_id="t", kind=kind, value=value)  # type: ignore[arg-type]


def test_unknown_kind_bad_reward_and_bad_call_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown feedback kind 'stars'"):
        FeedbackEvent(trace_id="t", kind="stars", value=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward"):
        FeedbackEvent(trace_id="t", kind="rating", value=5, reward=1.5)
    with pytest.raises(ValueError, match="cost_usd"):
        CallEvent(trace_id="t", tenant="c", model="m", cost_usd=-0.1)
    with pytest.raises(ValueError, match="status"):
        CallEvent(trace_id="t", tenant="c", model="m", status="fine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        CallEvent(trace_id="", tenant="c", model="m")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "click", "trace_id": "t"}', "unknown event type 'click'"),
        ('{"type": "call", "trace_id": "t"}', "tenant: Field required"),
        (
            '{"type": "call", "trace_id": "t", "tenant": "c", "model": "m", "input_tokens": "12",'
            ' "event_id": "e", "created_at": "2026-03-01T12:00:00+00:00"}',
            "input_tokens: Input should be a valid integer",
        ),
        (
            '{"type": "feedback", "trace_id": "t", "kind": "rating", "value": 9,'
            ' "event_id": "e", "created_at": "2026-03-01T12:00:00+00:00"}',
            "between 1 and 5",
        ),
        (
            '{"type": "feedback", "trace_id": "t", "kind": "rating", "value": 4,'
            ' "event_id": "e", "created_at": "2026-03-01T12:00:00"}',
            "no time zone",
        ),
    ],
)
def test_a_malformed_line_is_a_typed_error_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message) as caught:
        decode_event(line, line_number=7, source="spill.jsonl")
    assert isinstance(caught.value, MajordomeError)
    assert caught.value.line == 7
    assert str(caught.value).startswith("spill.jsonl, line 7: ")


class Opaque:
    def __str__(self) -> str:
        return "opaque thing"


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_json_columns_hold_strict_json_whatever_the_values() -> None:
    text = encode_json({"nan": float("nan"), "when": T0, "set": {1}, "obj": Opaque(), "bad": Broken()})
    assert '"nan":null' in text and '"when":"2026-03-01T12:00:00+00:00"' in text and '"set":[1]' in text
    assert '"obj":"opaque thing"' in text and '"bad":"<Broken>"' in text
    event = decision_event(features={"score": float("inf")})
    assert decode_event(event.to_json()).features == {"score": None}


def test_a_call_gives_its_cost_row() -> None:
    call = CallEvent(
        trace_id="trace-9",
        tenant="creator_42",
        model="DeepSeek-V3",
        job_type="content.suggest",
        deployment="deepseek-v3-eu",
        attempts=2,
        input_tokens=1000,
        output_tokens=250,
        cost_usd=0.00228,
        latency_s=3.5,
        created_at=T0,
    )
    row = CostRow.from_call(call)
    assert (row.creator_id, row.model, row.job_type) == ("creator_42", "DeepSeek-V3", "content.suggest")
    assert (row.input_tokens, row.output_tokens, row.total_tokens, row.cost_usd) == (1000, 250, 1250, 0.00228)
    assert row.metadata["trace_id"] == "trace-9" and row.metadata["attempts"] == 2
    assert row.metadata["deployment"] == "deepseek-v3-eu" and row.metadata["latency_s"] == 3.5
    assert row.created_at == T0
    assert CostRow.COLUMNS == (
        "creator_id", "model", "job_type", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
        "metadata", "created_at",
    )  # fmt: skip


def test_events_from_a_decision_and_an_answer() -> None:
    from majordome import Answer

    decision = RoutingDecision(
        chosen="Mistral-Large",
        chain=("Mistral-Large", "DeepSeek-V3"),
        rejected={},
        policy="priors/3",
        candidates=(
            CandidateScore("Mistral-Large", 0.82, 0.0012, 2.1, 0.71, 120),
            CandidateScore("DeepSeek-V3", 0.8, 0.0009, 2.5, 0.69, 120),
        ),
        intent="translation",
        intent_confidence=0.93,
        intent_source="classifier",
        language="fr",
        job_type="chat.suggest",
    )
    recorded = DecisionEvent.from_decision(
        decision, trace_id="trace-3", tenant="creator_42", features={"prompt_tokens": 57}, prompt="Traduis : hello"
    )
    assert recorded.chain == ("Mistral-Large", "DeepSeek-V3") and recorded.intent == "translation"
    assert [c["model"] for c in recorded.candidates] == ["Mistral-Large", "DeepSeek-V3"]
    assert recorded.features == {"intent_confidence": 0.93, "intent_source": "classifier", "prompt_tokens": 57}
    assert decode_event(recorded.to_json()) == recorded

    answer = Answer(
        text="Translate: hello",
        model="Mistral-Large",
        served_by="mistral-large-eu",
        substituted=False,
        usage=Usage(input_tokens=30, output_tokens=8),
        cost_usd=0.000108,
        latency_ms=840.0,
        trace_id="trace-3",
        attempts=(
            Attempt("Mistral-Large", "mistral-large-eu", "mistral-large-eu", 1, "ProviderTimeout", 500.0),
            Attempt("Mistral-Large", "mistral-large-eu-2", "mistral-large-eu-2", 2, "ok", 340.0),
        ),
        decision=decision,
    )
    call = CallEvent.from_answer(answer, tenant="creator_42")
    assert (call.model, call.deployment, call.attempts, call.job_type) == (
        "Mistral-Large",
        "mistral-large-eu-2",
        2,
        "chat.suggest",
    )
    assert (call.input_tokens, call.output_tokens, call.latency_s, call.status) == (30, 8, 0.84, "ok")
