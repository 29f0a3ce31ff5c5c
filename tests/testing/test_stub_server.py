"""The shipped test doubles: the stub chat-completions server (spoken to with raw httpx) and
the network guard."""

from __future__ import annotations

import gc
import json
import logging
import socket
import time
from typing import Any

import httpx
import pytest

from majordome.testing import NetworkBlocked, StubLLMServer, StubReply, block_network

CHAT = {"model": "my-deployment", "messages": [{"role": "user", "content": "hi"}]}


def _events(body: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded except the final ``[DONE]``."""
    payloads = [line[len("data: ") :] for line in body.split("\n\n") if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


# -- the wire formats --------------------------------------------------------------------------


def test_completion_in_openai_shape(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("A scripted answer.", usage=(11, 4)))

    response = httpx.post(f"{stub.openai_base_url}/chat/completions", json=CHAT, headers={"Authorization": "Bearer k"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "my-deployment"
    assert data["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "A scripted answer."}, "finish_reason": "stop"}
    ]
    assert data["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    [recorded] = stub.requests
    assert (recorded.method, recorded.path, recorded.body) == ("POST", "/v1/chat/completions", CHAT)
    assert recorded.headers["authorization"] == "Bearer k"  # header names lower-cased


def test_azure_path_and_query_are_recorded(stub: StubLLMServer) -> None:
    response = httpx.post(f"{stub.azure_endpoint}/chat/completions?api-version=2024-05-01-preview", json=CHAT)

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the stub."  # the default reply
    assert stub.requests[0].path == "/models/chat/completions"
    assert stub.requests[0].query == "api-version=2024-05-01-preview"


def test_stream_is_sse_with_usage_then_done(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.ok("one two three", usage=(3, 3)))

    response = httpx.post(f"{stub.openai_base_url}/chat/completions", json={**CHAT, "stream": True})

    assert response.headers["content-type"] == "text/event-stream"
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 6


def test_replies_are_served_in_order_then_the_default(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.http_error(429, "wait", retry_after=0.5), StubReply.http_error(503, "down"))
    url = f"{stub.openai_base_url}/chat/completions"

    with httpx.Client() as client:
        responses = [client.post(url, json=CHAT) for _ in range(3)]

    assert [r.status_code for r in responses] == [429, 503, 200]
    assert responses[0].headers["retry-after"] == "0.5"
    assert responses[0].json() == {"error": {"code": "429", "message": "wait"}}
    assert stub.calls == 3


def test_unknown_route_and_non_json_body(stub: StubLLMServer) -> None:
    assert httpx.get(f"{stub.openai_base_url}/models").status_code == 404
    bad = httpx.post(f"{stub.openai_base_url}/chat/completions", content=b"not json")
    assert bad.status_code == 400
    assert stub.calls == 0  # neither consumed a scripted reply


def test_broken_json_is_not_parseable(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.broken_json())
    response = httpx.post(f"{stub.openai_base_url}/chat/completions", json=CHAT)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_reset_drops_the_connection(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.reset())
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{stub.openai_base_url}/chat/completions", json=CHAT)


def test_cut_stream_stops_after_the_given_chunks(stub: StubLLMServer) -> None:
    stub.enqueue(StubReply.cut_stream("a b c d e", after_chunks=3))
    received = b""

    with (
        pytest.raises(httpx.TransportError),
        httpx.stream("POST", f"{stub.openai_base_url}/chat/completions", json={**CHAT, "stream": True}) as response,
    ):
        for data in response.iter_bytes():
            received += data

    contents = [e["choices"][0]["delta"]["content"] for e in _events(received.decode())]
    assert contents == ["a", " b", " c"]
    assert b"[DONE]" not in received


def test_delay_and_latency_slow_the_answer() -> None:
    with StubLLMServer(latency_s=0.05) as server:
        server.enqueue(StubReply.ok(delay_s=0.1))
        started = time.monotonic()
        httpx.post(f"{server.openai_base_url}/chat/completions", json=CHAT)
        assert time.monotonic() - started >= 0.15


def test_injected_faults_are_seeded() -> None:
    def statuses(seed: int) -> list[int]:
        with StubLLMServer() as server, httpx.Client() as client:
            server.inject_faults(0.5, [StubReply.http_error(500)], seed=seed)
            return [client.post(f"{server.openai_base_url}/chat/completions", json=CHAT).status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}


def test_stop_ends_open_connections_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    server = StubLLMServer().start()
    server.enqueue(StubReply.ok(), StubReply.slow(5))
    url = f"{server.openai_base_url}/chat/completions"
    with httpx.Client(timeout=0.2) as client:
        assert client.post(url, json=CHAT).status_code == 200  # leaves a keep-alive connection open
        with pytest.raises(httpx.ReadTimeout):
            client.post(url, json=CHAT)  # leaves the slow answer in flight
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            server.stop()
            gc.collect()
    assert time.monotonic() - started < 2  # the slow answer did not hold the shutdown
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no task destroyed while pending
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=CHAT)


# -- block_network -----------------------------------------------------------------------------


def test_block_network_refuses_and_records_a_public_address() -> None:
    with block_network() as violations, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(NetworkBlocked):
            sock.connect(("203.0.113.1", 443))
        with pytest.raises(NetworkBlocked):
            sock.connect_ex(("203.0.113.1", 80))
    assert violations == ["connect 203.0.113.1:443", "connect 203.0.113.1:80"]
    assert issubclass(NetworkBlocked, ConnectionRefusedError)  # clients treat it as a failed connection


def test_block_network_refuses_name_lookups() -> None:
    with block_network() as violations:
        with pytest.raises(NetworkBlocked):
            socket.getaddrinfo("example.com", 443)
        with pytest.raises(NetworkBlocked):
            socket.create_connection(("example.com", 443), timeout=1)
    assert violations == ["resolve example.com", "resolve example.com"]


def test_block_network_records_attempts_a_client_swallowed() -> None:
    with block_network() as violations:
        with pytest.raises(httpx.ConnectError):
            httpx.get("https://example.com/")
        with pytest.raises(httpx.ConnectError):
            httpx.get("http://203.0.113.1:8080/")
    # httpx looks up even an address literal, so the second is refused at the lookup.
    assert [v.split()[1].split(":")[0] for v in violations] == ["example.com", "203.0.113.1"]


def test_block_network_lets_loopback_through(stub: StubLLMServer) -> None:
    with block_network() as violations:
        by_ip = httpx.post(f"{stub.openai_base_url}/chat/completions", json=CHAT)
        by_name = httpx.post(f"http://localhost:{stub.port}/v1/chat/completions", json=CHAT)
        with socket.create_connection(("127.0.0.1", stub.port), timeout=1):
            pass
    assert (by_ip.status_code, by_name.status_code) == (200, 200)
    assert violations == []


def test_block_network_restores_the_socket_module() -> None:
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    with block_network():
        assert socket.getaddrinfo is not getaddrinfo
    assert (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo) == (connect, connect_ex, getaddrinfo)
