"""The public request and answer objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from majordome._errors import BadRequestError
from majordome._validation import ValidatedModel
from majordome.models.base import Attempt
from majordome.models.messages import Message, Usage
from majordome.router.decision import RoutingDecision

__all__ = ["Answer", "Completed", "ReasoningDelta", "Request", "StreamEvent", "TextDelta"]


class Request(ValidatedModel):
    """One request to the Majordome.

    ``tenant`` is the creator (or account) the request is for; ``job_type`` the worker's job
    (``chat.suggest``, ``content.suggest``, ``content.analyze``, ``video.analysis`` or any other),
    which sets the default deadline. ``intent``, ``language`` and ``tier`` are hints for the
    router (a hint wins over classification); ``model`` pins a catalogue model (no routing, no
    fallback); ``max_cost_usd`` leaves out models expected to cost more. Invalid input raises
    :class:`BadRequestError`.
    """

    messages: list[Message] = Field(min_length=1)
    tenant: str = Field(min_length=1, max_length=200)
    job_type: str | None = None
    intent: str | None = None
    language: str | None = None
    tier: str | None = None
    model: str | None = None
    user: str | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    json_mode: bool = False
    deadline_s: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    trace_id: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)
    ground: bool | None = None
    """Ground the answer in the tenant's knowledge base: None = by intent (the configuration's
    ``grounding_intents``), True = always (an error without a knowledge base), False = never."""

    @classmethod
    def parse(cls, data: Request | dict[str, Any]) -> Request:
        """A :class:`Request` from itself or a mapping (for JSON callers)."""
        if isinstance(data, Request):
            return data
        if not isinstance(data, dict):
            raise BadRequestError(f"a request must be a Request or a dict, not {type(data).__name__}")
        return cls(**data)

    @field_validator("messages")
    @classmethod
    def _has_content(cls, messages: list[Message]) -> list[Message]:
        if all(isinstance(m.content, str) and not m.content.strip() for m in messages):
            raise ValueError("the messages hold no text and no attachment")
        if messages[-1].role == "assistant":
            raise ValueError("the last message must not be the assistant's: there is nothing to answer")
        return messages


@dataclass(frozen=True, slots=True)
class Citation:
    """A knowledge-base chunk quoted into the prompt as ``[marker]``; ``cited`` when the answer's
    text carries that marker."""

    marker: int
    document_id: str
    chunk_id: str
    index: int
    title: str | None
    source: str | None
    score: float
    cited: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """What the Majordome answered, what it cost and how it was decided.

    ``model`` is the catalogue slot that answered; ``served_by`` names what really produced the
    text, and ``substituted`` is true when the local model served the slot (no endpoint
    configured). ``reasoning`` holds a reasoning trace (DeepSeek-R1's ``<think>``), kept out of
    ``text``. ``cost_usd`` is what the call cost (0 for the local model).
    """

    text: str
    model: str
    served_by: str
    substituted: bool
    usage: Usage
    cost_usd: float
    latency_ms: float
    trace_id: str
    attempts: tuple[Attempt, ...]
    decision: RoutingDecision
    reasoning: str | None = None
    finish_reason: str | None = None
    citations: tuple[Citation, ...] = ()
    """The knowledge-base passages the prompt quoted (grounded answers only)."""
    cached: bool = False
    """Served from the response cache: no model was called and it cost nothing."""
    cache_age_s: float | None = None
    cached_trace_id: str | None = None
    """The trace of the answer the cache holds (its decision and feedback live there)."""
    cache_similarity: float | None = None
    """For a semantic hit, the cosine similarity of the two last messages (None: exact hit)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = {**asdict(self.usage), "total_tokens": self.usage.total_tokens}
        data["decision"] = self.decision.to_dict()
        return data


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str
    type: ClassVar[Literal["text"]] = "text"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the reasoning trace (never part of the answer's text)."""

    text: str
    type: ClassVar[Literal["reasoning"]] = "reasoning"


@dataclass(frozen=True, slots=True)
class Completed:
    """The end of a stream: the whole answer, with usage and cost."""

    answer: Answer
    type: ClassVar[Literal["completed"]] = "completed"


StreamEvent = TextDelta | ReasoningDelta | Completed
