"""Fixtures shared by the whole suite.

Every test runs inside :func:`majordome.testing.block_network`: a test that tries to reach a
real host fails at teardown, even when the error was swallowed on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from majordome import (
    Answer,
    Completed,
    Majordome,
    MajordomeConfig,
    MajordomeError,
    ReasoningDelta,
    RetryPolicy,
    TextDelta,
)
from majordome.testing import StubLLMServer, StubReply, block_network


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[list[str]]:
    """Refuse non-loopback connections; fail the test if one was attempted."""
    with block_network() as violations:
        yield violations
    if violations:
        pytest.fail(f"the test tried to reach the network: {violations}", pytrace=False)


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    """A stub chat-completions server on loopback, stopped after the test."""
    with StubLLMServer() as server:
        yield server


# -- the whole stack against the stub ----------------------------------------------------------

Api = Literal["openai", "azure-ai-inference"]
Mode = Literal["async", "sync"]
MODES: tuple[Mode, ...] = ("async", "sync")

# Catalogue slots not used by the stack tests: DeepSeek-V3 is chosen for a plain request and
# Mistral-Large is its first fallback.
_DISABLED = ("DEEPSEEK_R1", "PHI_4_MULTIMODAL", "PHI_4_MINI", "LLAMA_3_3_70B", "AZURE_SPEECH_BATCH")
KEYS = {"DEEPSEEK_V3": "v3-key-0123456789", "MISTRAL_LARGE": "mistral-key-9876543210"}


@dataclass
class Outcome:
    """What one call through Majordome gave, in a shape that compares across sync and async."""

    text: str | None = None
    error: MajordomeError | None = None
    attempts: list[tuple[str, str, int | None]] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    answer: Answer | None = None

    @property
    def error_type(self) -> type[BaseException] | None:
        return type(self.error) if self.error is not None else None

    def same_as(self, other: Outcome) -> bool:
        partial = getattr(self.error, "partial_text", None), getattr(other.error, "partial_text", None)
        return (
            (self.text, self.error_type, self.attempts, self.deltas)
            == (other.text, other.error_type, other.attempts, other.deltas)
            and partial[0] == partial[1]
        )


class Stack:
    """Builds a Majordome whose DeepSeek-V3 and Mistral-Large slots call ``server`` over ``api``,
    and runs one request through it, asynchronously or synchronously, on a fresh instance (so
    circuit breakers start closed and the stub's queue is the only script)."""

    def __init__(self, server: StubLLMServer, api: Api) -> None:
        self.server = server
        self.api = api
        self.env: dict[str, str] = {f"MAJORDOME_MODEL__{name}__ENABLED": "false" for name in _DISABLED}
        for slot, key in KEYS.items():
            if api == "openai":
                self.env[f"MAJORDOME_MODEL__{slot}__API"] = "openai"
                self.env[f"MAJORDOME_MODEL__{slot}__ENDPOINT"] = server.openai_base_url
                self.env[f"MAJORDOME_MODEL__{slot}__AUTH"] = "none"
            else:
                self.env[f"AZURE_{slot}_ENDPOINT"] = server.azure_endpoint
                self.env[f"AZURE_{slot}_KEY"] = key

    @property
    def endpoint(self) -> str:
        return self.server.openai_base_url if self.api == "openai" else self.server.azure_endpoint

    def majordome(self, **config: Any) -> Majordome:
        config.setdefault("retry", RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05))
        return Majordome(MajordomeConfig(**config), env=self.env)

    def ask(self, mode: Mode, request: Mapping[str, Any], replies: tuple[StubReply, ...] = (),
            **config: Any) -> Outcome:
        return self._run(mode, "ask", request, replies, config)

    def stream(self, mode: Mode, request: Mapping[str, Any], replies: tuple[StubReply, ...] = (),
               **config: Any) -> Outcome:
        return self._run(mode, "stream", request, replies, config)

    def both(self, kind: Literal["ask", "stream"], request: Mapping[str, Any], replies: tuple[StubReply, ...] = (),
             **config: Any) -> Outcome:
        """Run the request asynchronously and synchronously; they must give the same outcome."""
        outcomes = [self._run(mode, kind, request, replies, config) for mode in MODES]
        assert outcomes[0].same_as(outcomes[1]), f"async and sync differ:\n{outcomes[0]}\n{outcomes[1]}"
        return outcomes[0]

    def _run(self, mode: Mode, kind: str, request: Mapping[str, Any], replies: tuple[StubReply, ...],
             config: dict[str, Any]) -> Outcome:
        self.server.enqueue(*replies)
        mj = self.majordome(**config)
        outcome = Outcome()
        started = time.monotonic()
        try:
            if mode == "async":
                asyncio.run(self._async(mj, kind, dict(request), outcome))
            else:
                with mj:
                    self._sync(mj, kind, dict(request), outcome)
        except MajordomeError as error:
            outcome.error = error
            outcome.attempts = _attempts_of(error)
        outcome.elapsed_s = time.monotonic() - started
        return outcome

    @staticmethod
    async def _async(mj: Majordome, kind: str, request: dict[str, Any], outcome: Outcome) -> None:
        async with mj:
            if kind == "ask":
                _record_answer(outcome, await mj.ask(request))
            else:
                async for event in mj.stream(request):
                    _record_event(outcome, event)

    @staticmethod
    def _sync(mj: Majordome, kind: str, request: dict[str, Any], outcome: Outcome) -> None:
        if kind == "ask":
            _record_answer(outcome, mj.ask_sync(request))
        else:
            for event in mj.stream_sync(request):
                _record_event(outcome, event)


def _record_answer(outcome: Outcome, answer: Answer) -> None:
    outcome.answer = answer
    outcome.text = answer.text
    outcome.attempts = [(a.model, a.outcome, a.status_code) for a in answer.attempts]


def _record_event(outcome: Outcome, event: TextDelta | ReasoningDelta | Completed) -> None:
    if isinstance(event, TextDelta):
        outcome.deltas.append(event.text)
    elif isinstance(event, Completed):
        _record_answer(outcome, event.answer)


def _attempts_of(error: MajordomeError) -> list[tuple[str, str, int | None]]:
    """The failures an error carries (``causes`` of the chain), as (model, error class, status)."""
    causes = getattr(error, "causes", ())
    return [(model, type(cause).__name__, getattr(cause, "status_code", None)) for model, cause in causes]


@pytest.fixture
def make_stack(stub: StubLLMServer) -> Callable[[Api], Stack]:
    return lambda api: Stack(stub, api)
