"""A loopback HTTP server that speaks the chat-completions wire format, with scripted faults.

Both OpenAI (``POST <base>/v1/chat/completions``) and Azure AI Inference
(``POST <endpoint>/chat/completions?api-version=...``) use the same JSON and the same SSE
stream (``data: {...}`` lines, then ``data: [DONE]``), so one server answers both: any path
ending in ``/chat/completions``. Replies come from a queue of :class:`StubReply`, then from
``default``, or at random from ``faults`` (for soak tests). The server is written directly on
asyncio streams so it can misbehave precisely: answer slowly, reset the connection, send
broken JSON, or cut a stream midway.

Use it in a test::

    with StubLLMServer() as server:
        server.enqueue(StubReply.http_error(429, retry_after=1), StubReply.ok("hello"))
        ...  # point a provider at server.openai_base_url or server.azure_endpoint

or as a separate process for load tests: ``python -m majordome.testing.stub_server --latency 0.05``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["RecordedRequest", "StubLLMServer", "StubReply"]

ReplyKind = Literal["ok", "http_error", "broken_json", "cut_stream", "reset"]


@dataclass(frozen=True)
class StubReply:
    """One scripted answer. Build with the class methods."""

    kind: ReplyKind = "ok"
    text: str = "Hello from the stub."
    delay_s: float = 0.0
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    error_message: str = ""
    usage: tuple[int, int] | None = (10, 5)
    chunks_before_cut: int = 2
    chunk_delay_s: float = 0.0

    @classmethod
    def ok(
        cls,
        text: str = "Hello from the stub.",
        *,
        delay_s: float = 0.0,
        usage: tuple[int, int] | None = (10, 5),
        chunk_delay_s: float = 0.0,
    ) -> StubReply:
        return cls("ok", text=text, delay_s=delay_s, usage=usage, chunk_delay_s=chunk_delay_s)

    @classmethod
    def http_error(
        cls, status: int, message: str = "stub error", *, retry_after: float | None = None, delay_s: float = 0.0
    ) -> StubReply:
        headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        return cls("http_error", status=status, headers=headers, error_message=message, delay_s=delay_s)

    @classmethod
    def broken_json(cls, *, delay_s: float = 0.0) -> StubReply:
        return cls("broken_json", delay_s=delay_s)

    @classmethod
    def cut_stream(cls, text: str = "This stream will be cut off midway.", *, after_chunks: int = 2) -> StubReply:
        """Streams ``after_chunks`` chunks, then drops the connection (non-streaming: a truncated body)."""
        return cls("cut_stream", text=text, chunks_before_cut=after_chunks)

    @classmethod
    def reset(cls, *, delay_s: float = 0.0) -> StubReply:
        """Drops the connection without answering."""
        return cls("reset", delay_s=delay_s)

    @classmethod
    def slow(cls, delay_s: float, text: str = "A slow answer.") -> StubReply:
        return cls("ok", text=text, delay_s=delay_s)


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received (headers lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Faults:
    rate: float
    mix: Sequence[StubReply]
    rng: random.Random


class StubLLMServer:
    """The stub server, run on its own event loop in a daemon thread (``start``/``stop`` or ``with``)."""

    def __init__(
        self, default: StubReply | None = None, *, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0
    ) -> None:
        self.default = default or StubReply.ok()
        self.host = host
        self.port = port
        self.latency_s = latency_s
        self.requests: list[RecordedRequest] = []
        self._queue: deque[StubReply] = deque()
        self._lock = threading.Lock()
        self._faults: _Faults | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0

    # -- scripting ---------------------------------------------------------------------------

    def enqueue(self, *replies: StubReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def inject_faults(self, rate: float, mix: Sequence[StubReply], seed: int = 0) -> None:
        """Answer a share ``rate`` of calls with a reply drawn from ``mix`` (after the queue)."""
        with self._lock:
            self._faults = _Faults(rate, tuple(mix), random.Random(seed))

    def _next_reply(self) -> StubReply:
        with self._lock:
            self._counter += 1
            if self._queue:
                return self._queue.popleft()
            if self._faults is not None and self._faults.rng.random() < self._faults.rate:
                return self._faults.rng.choice(list(self._faults.mix))
            return self.default

    @property
    def calls(self) -> int:
        with self._lock:
            return self._counter

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        return f"{self.url}/models"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StubLLMServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, backlog=4096, limit=2**22)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            # Connections still open (keep-alive, a slow answer) would be destroyed pending.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="stub-llm-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stub server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve_forever(self) -> None:
        """Run on the current loop (for the command line)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=4096, limit=2**22)
        self.port = self._server.sockets[0].getsockname()[1]
        print(f"listening {self.url}", flush=True)
        async with self._server:
            await self._server.serve_forever()

    # -- HTTP --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                raw = await self._read_body(reader, headers)
                keep_alive = headers.get("connection", "").lower() != "close"
                path, _, query = target.partition("?")
                if not await self._respond(writer, method, path, query, headers, raw):
                    return
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # The server is stopping. Ending normally, not cancelled: asyncio 3.11's stream
            # callback would otherwise report the cancellation as an unhandled error.
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return bytes(body)
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        return await reader.readexactly(int(headers.get("content-length", "0")))

    async def _respond(
        self, writer: asyncio.StreamWriter, method: str, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> bool:
        """Answer one request; False when the connection was dropped on purpose."""
        if method != "POST" or not path.endswith("/chat/completions"):
            await _send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            await _send(writer, 400, {"error": {"message": "request body is not JSON"}})
            return True
        self.requests.append(RecordedRequest(method, path, query, headers, body))
        reply = self._next_reply()
        delay = self.latency_s + reply.delay_s
        if delay:
            await asyncio.sleep(delay)
        stream = bool(body.get("stream"))
        model = str(body.get("model", "stub"))
        if reply.kind == "reset":
            writer.transport.abort()
            return False
        if reply.kind == "http_error":
            payload = {"error": {"code": str(reply.status), "message": reply.error_message}}
            await _send(writer, reply.status, payload, extra=reply.headers)
            return True
        if reply.kind == "broken_json":
            if stream:
                await _start_stream(writer)
                await _chunk(writer, b'data: {"id": "x", "choices": [{"delta": {"content": "hi"\n\n')
                await _chunk(writer, b"")
            else:
                await _send_raw(writer, 200, b'{"id": "x", "choices": [{"message": ', "application/json")
            return True
        if not stream:
            if reply.kind == "cut_stream":
                data = json.dumps(_completion(model, reply)).encode()
                writer.write(_status_line(200, "application/json", [("Content-Length", str(len(data)))]))
                writer.write(data[: len(data) // 2])
                await writer.drain()
                writer.transport.abort()
                return False
            await _send(writer, 200, _completion(model, reply))
            return True
        await _start_stream(writer)
        pieces = _split(reply.text)
        for index, piece in enumerate(pieces):
            if reply.kind == "cut_stream" and index >= reply.chunks_before_cut:
                await writer.drain()
                writer.transport.abort()
                return False
            await _chunk(
                writer,
                _sse(_delta(model, {"role": "assistant", "content": piece} if index == 0 else {"content": piece})),
            )
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
        if reply.kind == "cut_stream":
            writer.transport.abort()
            return False
        await _chunk(writer, _sse(_delta(model, {}, finish="stop")))
        if reply.usage is not None:
            await _chunk(
                writer, _sse({**_envelope(model, "chat.completion.chunk"), "choices": [], "usage": _usage(reply.usage)})
            )
        await _chunk(writer, b"data: [DONE]\n\n")
        await _chunk(writer, b"")
        return True


def _split(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] or [""]


def _envelope(model: str, kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-stub", "object": kind, "created": int(time.time()), "model": model}


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def _completion(model: str, reply: StubReply) -> dict[str, Any]:
    payload = {
        **_envelope(model, "chat.completion"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop"}],
    }
    if reply.usage is not None:
        payload["usage"] = _usage(reply.usage)
    return payload


def _delta(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        **_envelope(model, "chat.completion.chunk"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _status_line(status: int, content_type: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_raw(
    writer: asyncio.StreamWriter, status: int, data: bytes, content_type: str, extra: Sequence[tuple[str, str]] = ()
) -> None:
    writer.write(_status_line(status, content_type, [*extra, ("Content-Length", str(len(data)))]) + data)
    await writer.drain()


async def _send(
    writer: asyncio.StreamWriter, status: int, payload: dict[str, Any], extra: Sequence[tuple[str, str]] = ()
) -> None:
    await _send_raw(writer, status, json.dumps(payload).encode(), "application/json", extra)


async def _start_stream(writer: asyncio.StreamWriter) -> None:
    headers = [("Transfer-Encoding", "chunked"), ("Cache-Control", "no-cache")]
    writer.write(_status_line(200, "text/event-stream", headers))
    await writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m majordome.testing.stub_server``: serve until killed (prints ``listening URL``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--timeout-delay", type=float, default=5.0, help="delay of the 'slow' fault")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the stub server only listens on loopback")
    server = StubLLMServer(host=args.host, port=args.port, latency_s=args.latency)
    if args.fault_rate:
        server.inject_faults(args.fault_rate, default_fault_mix(args.timeout_delay), seed=args.seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve_forever())


def default_fault_mix(timeout_delay_s: float) -> list[StubReply]:
    """The faults of the soak test, in equal shares."""
    return [
        StubReply.http_error(429, "rate limited", retry_after=0.05),
        StubReply.http_error(500, "internal error"),
        StubReply.slow(timeout_delay_s),
        StubReply.reset(),
        StubReply.broken_json(),
        StubReply.cut_stream(),
    ]


if __name__ == "__main__":
    main()
