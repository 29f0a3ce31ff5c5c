"""Feedback over HTTP, and a graceful shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai

from majordome import Majordome, MajordomeConfig
from majordome.feedback import FeedbackLoop
from majordome.server import ApiKeys, BackgroundServer, create_app
from majordome.testing import Reply, ScriptedModel

HELLO = [{"role": "user", "content": "Say hello to a new fan."}]
Serve = Callable[..., Any]
Client = Callable[..., openai.OpenAI]


def feedback(server: Any, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/feedback", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def test_feedback_is_stored_once_and_learnt(
    serve: Serve, client: Client, api_key: dict[str, str], feedback_loop: FeedbackLoop
) -> None:
    server = serve(feedback=feedback_loop)
    raw = client(server).chat.completions.with_raw_response.create(model="majordome", messages=HELLO)
    trace_id = raw.headers["x-majordome-trace-id"]
    first = feedback(server, api_key["tenant-a"], trace_id=trace_id, kind="rating", value=5, idempotency_key="k1")
    assert first.status_code == 200
    assert first.json() == {"trace_id": trace_id, "kind": "rating", "reward": 1.0, "stored": True, "learned": True}
    again = feedback(server, api_key["tenant-a"], trace_id=trace_id, kind="rating", value=5, idempotency_key="k1")
    assert again.status_code == 200 and again.json()["stored"] is False
    feedback_loop.writer.flush_sync(timeout=10)
    assert [f.reward for f in feedback_loop.store.feedback(trace_id)] == [1.0]


def test_feedback_errors(serve: Serve, client: Client, api_key: dict[str, str], feedback_loop: FeedbackLoop) -> None:
    server = serve(feedback=feedback_loop)
    trace_id = (
        client(server)
        .chat.completions.with_raw_response.create(model="majordome", messages=HELLO)
        .headers["x-majordome-trace-id"]
    )
    unknown = feedback(server, api_key["tenant-a"], trace_id="no-such-trace", kind="rating", value=4)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "trace_not_found"
    bad = feedback(server, api_key["tenant-a"], trace_id=trace_id, kind="rating", value=9)
    assert bad.status_code == 400 and "1 to 5" in bad.json()["error"]["message"]
    kind = feedback(server, api_key["tenant-a"], trace_id=trace_id, kind="stars", value=3)
    assert kind.status_code == 400
    # tenant B cannot rate tenant A's answer, nor learn that the trace exists
    other = feedback(server, api_key["tenant-b"], trace_id=trace_id, kind="rating", value=1)
    assert other.status_code == 404 and other.json()["error"]["code"] == "trace_not_found"
    assert feedback(server, "wrong-key", trace_id=trace_id, kind="rating", value=1).status_code == 401


def test_feedback_without_a_store_is_409(serve: Serve, api_key: dict[str, str]) -> None:
    server = serve()
    response = feedback(server, api_key["tenant-a"], trace_id="t", kind="rating", value=5)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "feedback_not_configured"


def test_shutdown_finishes_streams_in_flight_then_flushes_feedback(
    api_key: dict[str, str], feedback_loop: FeedbackLoop
) -> None:
    slow = ScriptedModel(default=Reply("one two three four five", chunk_delay_s=0.1))
    mj = Majordome(MajordomeConfig(), providers={"*": slow}, env={}, feedback=feedback_loop)
    keys = ApiKeys()
    keys.add("tenant-a", api_key["tenant-a"])
    server = BackgroundServer(create_app(mj, keys)).start()
    openai_client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=api_key["tenant-a"], max_retries=0)
    stream = openai_client.chat.completions.create(model="majordome", messages=HELLO, stream=True)
    chunks = [next(iter(stream))]  # the stream has started
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    chunks.extend(stream)
    stopper.join(30)
    assert not stopper.is_alive()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    trace_id = chunks[-1].id.removeprefix("chatcmpl-")
    # the app closed the Majordome, which flushed the feedback queue: the call is in the store
    assert [c.status for c in feedback_loop.store.calls(trace_id)] == ["ok"]


def test_a_client_leaving_midstream_does_not_hold_up_shutdown(api_key: dict[str, str]) -> None:
    slow = ScriptedModel(default=Reply("a b c d e f g h i j", chunk_delay_s=0.3))
    mj = Majordome(MajordomeConfig(), providers={"*": slow}, env={})
    keys = ApiKeys()
    keys.add("tenant-a", api_key["tenant-a"])
    server = BackgroundServer(create_app(mj, keys)).start()
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/chat/completions",
        json={"messages": HELLO, "stream": True},
        headers={"Authorization": f"Bearer {api_key['tenant-a']}"},
        timeout=10,
    ) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # the client is gone: the stream is counted out at once, not after the 3 s it had left
    time.sleep(0.5)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
