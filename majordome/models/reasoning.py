"""Separate a reasoning trace (DeepSeek-R1's ``<think>…</think>``) from the answer text.

The trace must never reach a fan: it goes to ``answer.reasoning``. A trace is recognised only
at the very start of the output (after white space), as R1 emits it; a ``<think>`` later in
the text is ordinary text. :class:`ThinkSplitter` does the same on a stream whose tags may be
cut across chunks.
"""

from __future__ import annotations

__all__ = ["ThinkSplitter", "split_reasoning"]

_OPEN = "<think>"
_CLOSE = "</think>"


def split_reasoning(text: str) -> tuple[str, str | None]:
    """``(answer_text, reasoning)``; reasoning is None when the text has no leading trace."""
    splitter = ThinkSplitter()
    answer, reasoning = splitter.feed(text)
    tail_answer, tail_reasoning = splitter.finish()
    answer += tail_answer
    reasoning += tail_reasoning
    return answer, (reasoning if splitter.saw_trace else None)


class ThinkSplitter:
    """Incremental splitter: :meth:`feed` returns ``(answer_delta, reasoning_delta)``."""

    __slots__ = ("_buffer", "_state", "saw_trace")

    def __init__(self) -> None:
        self._state = "start"  # start -> (thinking -> answer) | answer
        self._buffer = ""
        self.saw_trace = False

    def feed(self, chunk: str) -> tuple[str, str]:
        if self._state == "answer":
            return chunk, ""
        self._buffer += chunk
        if self._state == "start":
            stripped = self._buffer.lstrip()
            if not stripped or (_OPEN.startswith(stripped) and len(stripped) < len(_OPEN)):
                return "", ""  # could still become "<think>"
            if not stripped.startswith(_OPEN):
                self._state = "answer"
                text, self._buffer = self._buffer, ""
                return text, ""
            self._state = "thinking"
            self.saw_trace = True
            self._buffer = stripped[len(_OPEN) :]
        if self._state == "after":  # trace closed: drop the white space before the answer
            stripped, self._buffer = self._buffer.lstrip(), ""
            if stripped:
                self._state = "answer"
            return stripped, ""
        # thinking: emit all but a tail that might be the start of "</think>"
        end = self._buffer.find(_CLOSE)
        if end >= 0:
            reasoning = self._buffer[:end]
            answer = self._buffer[end + len(_CLOSE) :].lstrip()
            self._buffer = ""
            self._state = "answer" if answer else "after"
            return answer, reasoning
        keep = _partial_suffix(self._buffer, _CLOSE)
        reasoning = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return "", reasoning

    def finish(self) -> tuple[str, str]:
        """Flush what is buffered at the end of the stream."""
        rest, self._buffer = self._buffer, ""
        if self._state == "thinking":
            return "", rest  # an unterminated trace stays reasoning: never leak it as answer
        if self._state == "after":
            return rest.lstrip(), ""
        return rest, ""


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
