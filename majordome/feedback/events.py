"""The records of the feedback store: a routing decision, a model call, a piece of feedback.

All three are frozen dataclasses, cheap to build on the request path (a few cheap checks, no
serialisation). Each carries ``event_id``, its idempotency key (a random hex id unless the caller
gives one: pass the platform's own id for feedback so that a resent rating is stored once), and
``created_at``, an aware UTC datetime. Records sharing a ``trace_id`` belong to one request.

They travel as JSON lines (the writer's spill file): :meth:`to_json` writes one object with a
``"type"`` of ``"decision"``, ``"call"`` or ``"feedback"``; :func:`decode_event` reads it back with
validation and raises :class:`EventDecodeError` naming the line. :class:`CostRow` is the shape of
the platform's ``AzureAICost`` table, which the ``majordome_cost`` view of both stores exposes.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from majordome._errors import MajordomeError
from majordome.feedback.reward import KINDS, FeedbackKind

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from majordome._types import Answer
    from majordome.router.decision import RoutingDecision

__all__ = [
    "CallEvent",
    "CostRow",
    "DecisionEvent",
    "Event",
    "EventDecodeError",
    "FeedbackEvent",
    "decode_event",
    "encode_json",
    "new_event_id",
]


class EventDecodeError(MajordomeError, ValueError):
    """A serialised event is not valid; ``line`` is its line number (1-based) when known."""

    def __init__(self, message: str, *, line: int | None = None, source: str | None = None) -> None:
        self.line = line
        self.source = source
        where = ", ".join(p for p in (source, None if line is None else f"line {line}") if p)
        super().__init__(f"{where}: {message}" if where else message)


def new_event_id() -> str:
    """A fresh random event id (32 hex digits)."""
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


def _check_common(event: DecisionEvent | CallEvent | FeedbackEvent) -> None:
    if not event.event_id or not event.trace_id:
        raise ValueError("event_id and trace_id must not be empty")
    created = event.created_at
    if created.tzinfo is None:
        raise ValueError(f"created_at {created.isoformat()} has no time zone (use UTC)")
    if created.tzinfo is not UTC:
        object.__setattr__(event, "created_at", created.astimezone(UTC))


def _nonnegative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionEvent:
    """How the router decided one request.

    ``candidates`` are the scored candidates (``model, quality, cost_usd, latency_s, utility``,
    as :meth:`CandidateScore.to_dict` gives them); ``features`` a few request features (intent
    confidence, prompt tokens...); ``prompt`` the prompt's text when recording prompts is enabled,
    else None (outcome export needs it).
    """

    type: ClassVar[Literal["decision"]] = "decision"

    trace_id: str
    tenant: str
    chosen: str
    chain: tuple[str, ...]
    policy: str
    job_type: str | None = None
    intent: str | None = None
    language: str | None = None
    candidates: tuple[dict[str, Any], ...] = ()
    explored: bool = False
    features: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    event_id: str = field(default_factory=new_event_id)
    created_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        _check_common(self)
        if not self.chosen:
            raise ValueError("chosen must not be empty")

    @classmethod
    def from_decision(
        cls,
        decision: RoutingDecision,
        *,
        trace_id: str,
        tenant: str,
        features: Mapping[str, Any] | None = None,
        prompt: str | None = None,
    ) -> DecisionEvent:
        """The record of ``decision``; its intent confidence and source join ``features``."""
        extra: dict[str, Any] = {}
        if decision.intent_confidence is not None:
            extra["intent_confidence"] = round(decision.intent_confidence, 4)
        if decision.intent_source is not None:
            extra["intent_source"] = decision.intent_source
        if decision.quality_model is not None:
            extra["quality_model"] = decision.quality_model
        return cls(
            trace_id=trace_id,
            tenant=tenant,
            chosen=decision.chosen,
            chain=tuple(decision.chain),
            policy=decision.policy,
            job_type=decision.job_type,
            intent=decision.intent,
            language=decision.language,
            candidates=tuple(c.to_dict() for c in decision.candidates),
            explored=decision.explored,
            features={**extra, **(features or {})},
            prompt=prompt,
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_json(self) -> str:
        return encode_json(self.to_dict())


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """One request's call to a model (all its attempts and fallbacks): what answered, what it cost.

    ``model`` is the catalogue slot that answered (the last one tried when all failed),
    ``deployment`` its deployment, ``served_by`` what really produced the text and
    ``substituted`` whether a stand-in (the local model) served the slot. ``status`` is ``"ok"``
    or ``"error"``, with the error's class name in ``error_class``.
    """

    type: ClassVar[Literal["call"]] = "call"

    trace_id: str
    tenant: str
    model: str
    job_type: str | None = None
    intent: str | None = None
    deployment: str | None = None
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    status: Literal["ok", "error"] = "ok"
    error_class: str | None = None
    served_by: str | None = None
    substituted: bool = False
    event_id: str = field(default_factory=new_event_id)
    created_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        _check_common(self)
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be 'ok' or 'error', not {self.status!r}")
        if self.attempts < 0 or self.input_tokens < 0 or self.output_tokens < 0:
            raise ValueError("attempts and token counts must be >= 0")
        _nonnegative("cost_usd", self.cost_usd)
        _nonnegative("latency_s", self.latency_s)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_answer(cls, answer: Answer, *, tenant: str, job_type: str | None = None) -> CallEvent:
        """The record of a successful call; the deployment is the one whose attempt answered."""
        last = answer.attempts[-1] if answer.attempts else None
        return cls(
            trace_id=answer.trace_id,
            tenant=tenant,
            model=answer.model,
            job_type=job_type if job_type is not None else answer.decision.job_type,
            intent=answer.decision.intent,
            deployment=last.deployment if last is not None else None,
            attempts=len(answer.attempts),
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            cost_usd=answer.cost_usd,
            latency_s=answer.latency_ms / 1000,
            served_by=answer.served_by,
            substituted=answer.substituted,
        )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_json(self) -> str:
        return encode_json(self.to_dict())


def _check_feedback_value(kind: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{kind} value must be finite, not {value!r}")
    if kind == "rating" and not 1 <= value <= 5:
        raise ValueError(f"a rating is between 1 and 5, not {value:g}")
    if kind in ("thumbs", "conversion") and value not in (1.0, 0.0, -1.0):
        raise ValueError(f"{kind} is 1 (up / converted) or 0 or -1 (down / not converted), not {value:g}")
    if kind == "edit" and not 0 <= value <= 1:
        raise ValueError(f"an edit's value is the share of the text kept, in [0, 1], not {value:g}")
    if kind == "revenue" and value < 0:
        raise ValueError(f"revenue must be >= 0 (USD), not {value:g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEvent:
    """A signal about one answer, keyed by its trace id.

    ``value`` by ``kind``: ``rating`` 1 to 5; ``thumbs`` 1 (up), 0 or -1 (down); ``edit`` the
    share of the suggested text kept in what was sent, in [0, 1] (``detail`` may hold the edit
    distance); ``conversion`` 1, or 0 or -1; ``revenue`` USD >= 0. ``reward`` is the value mapped to
    [0, 1] for learning, None when not mapped. Pass the platform's own id as ``event_id`` so that
    the same feedback sent twice is stored once.
    """

    type: ClassVar[Literal["feedback"]] = "feedback"

    trace_id: str
    kind: FeedbackKind
    value: float
    detail: dict[str, Any] = field(default_factory=dict)
    reward: float | None = None
    event_id: str = field(default_factory=new_event_id)
    created_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        _check_common(self)
        if self.kind not in KINDS:
            raise ValueError(f"unknown feedback kind {self.kind!r}; known: {', '.join(KINDS)}")
        _check_feedback_value(self.kind, float(self.value))
        if self.reward is not None and not (math.isfinite(self.reward) and 0 <= self.reward <= 1):
            raise ValueError(f"reward must be in [0, 1] or None, not {self.reward!r}")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_json(self) -> str:
        return encode_json(self.to_dict())


Event = DecisionEvent | CallEvent | FeedbackEvent
_EVENT_TYPES: dict[str, type[DecisionEvent] | type[CallEvent] | type[FeedbackEvent]] = {
    "decision": DecisionEvent,
    "call": CallEvent,
    "feedback": FeedbackEvent,
}


@dataclass(frozen=True, slots=True)
class CostRow:
    """One row of the platform's cost table (``AzureAICost``), as the ``majordome_cost`` view
    gives it: ``creator_id`` is the tenant; ``metadata`` holds the trace id, deployment, attempts,
    latency, what served the call and its status."""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "creator_id",
        "model",
        "job_type",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "metadata",
        "created_at",
    )

    creator_id: str
    model: str
    job_type: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_call(cls, call: CallEvent) -> CostRow:
        return cls(
            creator_id=call.tenant,
            model=call.model,
            job_type=call.job_type,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            total_tokens=call.total_tokens,
            cost_usd=call.cost_usd,
            metadata={
                "trace_id": call.trace_id,
                "event_id": call.event_id,
                "deployment": call.deployment,
                "attempts": call.attempts,
                "latency_s": call.latency_s,
                "served_by": call.served_by,
                "status": call.status,
            },
            created_at=call.created_at,
        )


# -- JSON ----------------------------------------------------------------------------------------


def _to_dict(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"type": event.type}
    for f in fields(event):
        value = getattr(event, f.name)
        data[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return data


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as None and containers as lists/dicts (for strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the event
        return f"<{type(value).__name__}>"


def encode_json(value: Any) -> str:
    """Compact, strict JSON (no NaN): values JSON cannot hold become strings, NaN and infinities
    null. Used for the spill file and the stores' JSON columns."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_adapters: dict[str, TypeAdapter[Any]] = {}


def _adapter(name: str) -> TypeAdapter[Any]:
    adapter = _adapters.get(name)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _adapters[name] = TypeAdapter(_EVENT_TYPES[name])
    return adapter


def decode_event(line: str | bytes, *, line_number: int | None = None, source: str | None = None) -> Event:
    """The event serialised in ``line`` (as :meth:`to_json` wrote it), validated: types are
    checked strictly, values as the constructors do. Raises :class:`EventDecodeError`."""
    from pydantic import ValidationError

    try:
        data = json.loads(line)
    except ValueError as exc:
        raise EventDecodeError(f"not JSON ({exc})", line=line_number, source=source) from exc
    if not isinstance(data, dict):
        raise EventDecodeError("not a JSON object", line=line_number, source=source)
    kind = data.get("type")
    if kind not in _EVENT_TYPES:
        raise EventDecodeError(
            f"unknown event type {kind!r} (expected one of {', '.join(_EVENT_TYPES)})", line=line_number, source=source
        )
    try:
        event: Event = _adapter(kind).validate_json(line, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise EventDecodeError(f"invalid {kind} event: {problems}", line=line_number, source=source) from exc
    return event
