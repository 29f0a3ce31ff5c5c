"""Test doubles for code that uses majordome (and for majordome's own tests).

- :class:`ScriptedModel`: a model that answers from a script (texts, errors, delays, streams);
  plug it in with ``Majordome(providers={"*": ScriptedModel(...)})``.
- :func:`block_network`: makes any connection to a non-loopback address fail loudly, so a test
  that would reach a real model by accident fails instead of spending money.
- :class:`StubLLMServer` / :class:`StubReply`: a real HTTP server on loopback speaking the
  OpenAI / Azure AI Inference wire format, with scripted faults.

Nothing here is used by majordome's request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import re
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from majordome.models.base import Model, ModelRequest, ModelResponse, StreamChunk
from majordome.models.messages import Usage
from majordome.testing.stub_server import RecordedRequest, StubLLMServer, StubReply

__all__ = [
    "HashingEmbedder",
    "NetworkBlocked",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "StubLLMServer",
    "StubReply",
    "block_network",
]


class HashingEmbedder:
    """A fast, deterministic stand-in for a sentence embedder, for tests of code that embeds: each
    lower-cased word is hashed into one of ``dim`` dimensions, so texts sharing words are similar.
    It satisfies :class:`majordome.knowledge.Embedder`; it understands nothing of meaning.
    ``languages``: what it claims to be meant for (None: every language), to test the knowledge
    base's handling of single-language embedders."""

    def __init__(self, name: str = "test/word-hash", dim: int = 64, *, languages: Iterable[str] | None = None) -> None:
        self.name, self.dim = name, dim
        self.languages = frozenset(languages) if languages is not None else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: np.ndarray = out / np.where(norms == 0, 1.0, norms)
        return result


@dataclass(frozen=True)
class Reply:
    """One scripted answer of a :class:`ScriptedModel`.

    ``error`` is raised instead of answering (after ``delay_s``). When streamed, the text is
    sent as ``chunks`` (default: word by word), ``chunk_delay_s`` apart; ``fail_after_chunks``
    raises ``error`` after that many chunks. ``usage=None`` leaves usage for majordome to estimate.
    """

    text: str = ""
    delay_s: float = 0.0
    error: BaseException | None = None
    usage: Usage | None = None
    reasoning: str | None = None
    chunks: Sequence[str] | None = None
    chunk_delay_s: float = 0.0
    fail_after_chunks: int | None = None
    finish_reason: str = "stop"

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]


class ScriptedModel(Model):
    """Answers from a queue of replies, then with ``default`` (or fails when there is none).

    ``calls`` records every :class:`ModelRequest` received, streamed or not.
    """

    def __init__(
        self, *replies: Reply | str | BaseException, default: Reply | str | None = None, label: str = "scripted"
    ) -> None:
        self.replies: deque[Reply] = deque(_as_reply(r) for r in replies)
        self.default = _as_reply(default) if default is not None else None
        self.label = label
        self.calls: list[ModelRequest] = []

    def add(self, *replies: Reply | str | BaseException) -> None:
        self.replies.extend(_as_reply(r) for r in replies)

    def _next(self, request: ModelRequest) -> Reply:
        self.calls.append(request)
        if self.replies:
            return self.replies.popleft()
        if self.default is not None:
            return self.default
        raise AssertionError(f"ScriptedModel {self.label!r} has no reply left for call {len(self.calls)}")

    async def complete(self, request: ModelRequest) -> ModelResponse:
        reply = self._next(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error is not None:
            raise reply.error
        text = f"<think>{reply.reasoning}</think>{reply.text}" if reply.reasoning else reply.text
        return ModelResponse(text=text, served_by=self.label, finish_reason=reply.finish_reason, usage=reply.usage)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        reply = self._next(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error is not None and reply.fail_after_chunks is None:
            raise reply.error
        pieces = reply.pieces()
        if reply.reasoning:
            pieces = [f"<think>{reply.reasoning}</think>", *pieces]
        for index, piece in enumerate(pieces):
            if reply.fail_after_chunks is not None and index >= reply.fail_after_chunks:
                raise reply.error or ConnectionResetError("scripted stream cut")
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            yield StreamChunk(text=piece)
        yield StreamChunk(finish_reason=reply.finish_reason, usage=reply.usage)


def _as_reply(item: Reply | str | BaseException) -> Reply:
    if isinstance(item, Reply):
        return item
    if isinstance(item, BaseException):
        return Reply(error=item)
    return Reply(text=item)


class NetworkBlocked(ConnectionRefusedError):
    """Raised by :func:`block_network` for a connection to a non-loopback address."""


@dataclass
class _Guard:
    violations: list[str] = field(default_factory=list)


_guard_lock = threading.Lock()


def _is_loopback(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def block_network() -> Iterator[list[str]]:
    """Within the block, connections and name lookups for non-loopback hosts raise
    :class:`NetworkBlocked`; the yielded list records each attempt, so a test can assert it
    stayed empty even when the error was swallowed on the way."""
    guard = _Guard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> NetworkBlocked:
        guard.violations.append(what)
        return NetworkBlocked(f"majordome.testing.block_network: real network access refused ({what})")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise refuse(f"connect {address[0]}:{address[1]}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise refuse(f"connect {address[0]}:{address[1]}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_loopback(name):
            raise refuse(f"resolve {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    with _guard_lock:
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = getaddrinfo
    try:
        yield guard.violations
    finally:
        with _guard_lock:
            socket.socket.connect = real_connect  # type: ignore[method-assign]
            socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
            socket.getaddrinfo = real_getaddrinfo
