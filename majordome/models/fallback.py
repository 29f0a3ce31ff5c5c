"""A fallback chain that is itself a model: try each candidate in order until one answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from majordome._errors import AllCandidatesFailed, DeadlineExceeded, MajordomeError, ProviderError, StreamInterrupted
from majordome.models.base import CallContext, Model, ModelRequest, ModelResponse, StreamChunk, aclose_stream

__all__ = ["FallbackModel"]


class FallbackModel(Model):
    """Candidates as ``(model id, model)`` pairs, best first.

    A :class:`ProviderError` moves on to the next candidate; when none is left the chain raises
    :class:`AllCandidatesFailed` with every cause, or :class:`DeadlineExceeded` when the deadline
    is what ended it. A stream falls back only before its first chunk.
    """

    def __init__(self, candidates: Sequence[tuple[str, Model]]) -> None:
        if not candidates:
            raise ValueError("a fallback chain needs at least one candidate")
        self.candidates = tuple(candidates)
        self.label = " -> ".join(model.label for _, model in self.candidates)

    async def aclose(self) -> None:
        for _, model in self.candidates:
            await model.aclose()

    def _announce(self, context: CallContext | None, index: int) -> None:
        """Tell the candidate how many follow it (a long Retry-After is then not waited out)."""
        if context is not None:
            context.alternatives = len(self.candidates) - index - 1

    @staticmethod
    def _out_of_time(context: CallContext | None) -> bool:
        return context is not None and context.deadline <= time.monotonic()

    @staticmethod
    def _give_up(context: CallContext | None, causes: list[tuple[str, MajordomeError]]) -> MajordomeError:
        if context is not None and context.deadline <= time.monotonic():
            return DeadlineExceeded(context.deadline_s, causes)
        return AllCandidatesFailed(causes)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        causes: list[tuple[str, MajordomeError]] = []
        for left, (name, model) in enumerate(self.candidates):
            if self._out_of_time(request.context):
                break
            self._announce(request.context, left)
            try:
                return await model.complete(request)
            except DeadlineExceeded:
                break
            except ProviderError as error:
                causes.append((name, error))
        raise self._give_up(request.context, causes)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        causes: list[tuple[str, MajordomeError]] = []
        for left, (name, model) in enumerate(self.candidates):
            if self._out_of_time(request.context):
                break
            self._announce(request.context, left)
            chunks = model.stream(request)
            started = False
            try:
                async for chunk in chunks:
                    started = True
                    yield chunk
                return
            except DeadlineExceeded:
                if started:
                    raise
                break
            except StreamInterrupted:
                raise
            except ProviderError as error:
                if started:
                    raise
                causes.append((name, error))
            finally:
                await aclose_stream(chunks)
        raise self._give_up(request.context, causes)
