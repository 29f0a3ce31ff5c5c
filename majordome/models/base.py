"""The one interface every model implements, and the small objects that cross it.

A provider (Azure AI Inference, OpenAI-compatible, local llama.cpp, test doubles) implements
:meth:`Model.complete` and :meth:`Model.stream` for one deployment. Retries, the circuit
breaker and the fallback chain are models too (:mod:`majordome.models.resilience`), so they
compose: ``FallbackModel([ResilientModel(provider), ...])``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from majordome.models.messages import Message, Usage

__all__ = ["Attempt", "CallContext", "Model", "ModelRequest", "ModelResponse", "StreamChunk"]


@dataclass(slots=True)
class Attempt:
    """One try of one deployment, as recorded in the answer and the call log."""

    model: str
    deployment: str
    served_by: str
    number: int
    outcome: str  # "ok" or the error class name
    latency_ms: float
    status_code: int | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0


@dataclass(slots=True)
class CallContext:
    """Per-request state shared by the layers of one call: trace id, deadline, attempts so far."""

    trace_id: str
    deadline: float  # time.monotonic() value after which nothing more is tried
    deadline_s: float
    attempts: list[Attempt] = field(default_factory=list)
    quota_wait_s: float | None = None  # how long a call may wait for its deployment's quota (None: the model's own)
    alternatives: int = 0  # candidates after the one being called (set by the fallback chain)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a model is asked: messages and generation parameters, already validated."""

    messages: Sequence[Message]
    max_output_tokens: int
    temperature: float | None = None
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None  # with json_mode: the answer must match this schema
    stop: tuple[str, ...] = ()
    context: CallContext | None = None


@dataclass(slots=True)
class ModelResponse:
    """A complete answer from one deployment.

    ``usage`` is None when a provider did not report it; the resilient layer then fills an
    estimate. ``model`` is the catalogue id of the slot that answered (set by that layer),
    ``served_by`` names what really produced the text.
    """

    text: str
    served_by: str
    finish_reason: str | None = None
    usage: Usage | None = None
    reasoning: str | None = None
    model: str = ""
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk of a stream carries ``usage``."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class Model(ABC):
    """A chat model deployment. ``label`` names it in logs and answers; it never holds secrets."""

    label: str

    @abstractmethod
    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` in one piece."""

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Answer ``request`` as an async iterator of chunks."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most models hold nothing
        """Release connections; the model may be used again afterwards (it reconnects)."""


async def aclose_stream(stream: AsyncIterator[StreamChunk]) -> None:
    """Close a stream now (not when it is garbage-collected), so its model stops generating."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
