"""Authentication, tenants, limits, the model list and the probes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from majordome import ConfigurationError
from majordome.feedback import FeedbackLoop
from majordome.server import ApiKeys, InProcessRateLimiter, RedisRateLimiter, ServerLimits, hash_key

HELLO = [{"role": "user", "content": "Say hello to a new fan."}]
Serve = Callable[..., Any]
Client = Callable[..., openai.OpenAI]


def post(server: Any, body: Any, key: str | None, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{server.base_url}{path}", json=body, headers=headers, timeout=10)


def test_a_missing_or_unknown_key_is_401(serve: Serve, client: Client) -> None:
    server = serve()
    for response in (
        post(server, {"messages": HELLO}, None),
        httpx.post(
            f"{server.base_url}/v1/chat/completions", json={"messages": HELLO}, headers={"Authorization": "Basic x"}
        ),
        httpx.get(f"{server.base_url}/v1/models"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as caught:
        client(server, "sk-not-a-key-of-anyone").chat.completions.create(model="majordome", messages=HELLO)
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "invalid_api_key"
    assert "sk-not-a-key" not in caught.value.response.text


def test_the_tenant_is_the_keys_whatever_the_body_says(
    serve: Serve, client: Client, api_key: dict[str, str], feedback_loop: FeedbackLoop
) -> None:
    server = serve(feedback=feedback_loop)
    raw = client(server, api_key["tenant-a"]).chat.completions.with_raw_response.create(
        model="majordome",
        messages=HELLO,
        user="tenant-b",
        metadata={"tenant": "tenant-b"},
        extra_body={"tenant": "tenant-b"},
    )
    trace_id = raw.headers["x-majordome-trace-id"]
    feedback_loop.writer.flush_sync(timeout=10)
    decision = feedback_loop.store.decision(trace_id)
    calls = feedback_loop.store.calls(trace_id)
    assert decision is not None and decision.tenant == "tenant-a"
    assert [c.tenant for c in calls] == ["tenant-a"]


def test_bodies_over_the_size_limit_are_413_and_too_many_messages_400(serve: Serve, api_key: dict[str, str]) -> None:
    server = serve(limits=ServerLimits(max_body_bytes=4000, max_messages=3))
    big = [{"role": "user", "content": "x" * 5000}]
    response = post(server, {"messages": big}, api_key["tenant-a"])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    many = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 2
    response = post(server, {"messages": [*many, *HELLO]}, api_key["tenant-a"])
    assert response.status_code == 400 and "too many messages" in response.json()["error"]["message"]
    assert post(server, {"messages": HELLO}, api_key["tenant-a"]).status_code == 200


def test_a_tenant_over_its_rate_is_429_with_retry_after(serve: Serve, api_key: dict[str, str]) -> None:
    server = serve(limits=ServerLimits(requests_per_minute=2))
    statuses = [post(server, {"messages": HELLO}, api_key["tenant-a"]).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = post(server, {"messages": HELLO}, api_key["tenant-a"])
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert post(server, {"messages": HELLO}, api_key["tenant-b"]).status_code == 200  # another tenant's window


async def test_in_process_windows_reset_each_minute() -> None:
    now = [120.0]
    limiter = InProcessRateLimiter(1, clock=lambda: now[0])
    assert await limiter.hit("t") is None
    assert await limiter.hit("t") == pytest.approx(60.0)
    now[0] = 179.5
    assert await limiter.hit("t") == pytest.approx(0.5)
    now[0] = 180.0
    assert await limiter.hit("t") is None


async def test_the_redis_rate_limit_is_shared_between_limiters(redis_url: str, redis_prefix: str) -> None:
    first = RedisRateLimiter(redis_url, 3, prefix=redis_prefix)
    second = RedisRateLimiter(redis_url, 3, prefix=redis_prefix)
    try:
        results = [await first.hit("t"), await second.hit("t"), await first.hit("t"), await second.hit("t")]
        assert results[:3] == [None, None, None]
        assert results[3] is not None and 0 < results[3] <= 61
        assert await first.hit("other") is None
        assert await first.ping() is None
    finally:
        await first.close()
        await second.close()


def test_the_server_rate_limits_through_redis(
    serve: Serve, api_key: dict[str, str], redis_url: str, redis_prefix: str
) -> None:
    server = serve(limits=ServerLimits(requests_per_minute=1, redis_url=redis_url, redis_prefix=redis_prefix))
    assert post(server, {"messages": HELLO}, api_key["tenant-a"]).status_code == 200
    refused = post(server, {"messages": HELLO}, api_key["tenant-a"])
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_models_lists_majordome_and_each_served_model(serve: Serve, client: Client) -> None:
    server = serve()
    ids = [m.id for m in client(server).models.list()]
    assert ids[0] == "majordome"
    assert {"deepseek-v3", "mistral-large"} <= set(ids[1:])
    assert "azure-speech-batch" not in ids  # not a chat model: not served


def test_health_and_readiness(serve: Serve, feedback_loop: FeedbackLoop) -> None:
    server = serve(feedback=feedback_loop)
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_not_ready_says_why(serve: Serve) -> None:
    # nothing listens on port 1: the shared rate limit cannot work
    server = serve(limits=ServerLimits(redis_url="redis://127.0.0.1:1/0"))
    response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert any("Redis" in reason for reason in response.json()["reasons"])
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def test_keys_are_kept_hashed_and_belong_to_one_tenant(tmp_path: Path) -> None:
    keys = ApiKeys({"a": [hash_key("key-1")]})
    keys.add("b", "key-2")
    assert keys.tenant_for("key-1") == "a" and keys.tenant_for("key-2") == "b"
    assert keys.tenant_for("key-3") is None and keys.tenant_for("") is None
    with pytest.raises(ConfigurationError, match="two tenants"):
        keys.add("b", "key-1")
    with pytest.raises(ConfigurationError, match="SHA-256"):
        ApiKeys({"a": ["key-1"]})  # a plain key, not a digest
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps({"a": [hash_key("k-json")]}))
    as_toml = tmp_path / "keys.toml"
    as_toml.write_text(f'b = ["{hash_key("k-toml")}"]\n')
    assert ApiKeys.load(as_json).tenant_for("k-json") == "a"
    assert ApiKeys.load(as_toml).tenant_for("k-toml") == "b"
    with pytest.raises(ConfigurationError, match="cannot read"):
        ApiKeys.load(tmp_path / "missing.json")


def test_tenant_lookup_time_does_not_depend_on_the_match() -> None:
    keys = ApiKeys()
    for i in range(200):
        keys.add(f"t{i}", f"key-{i}")

    def timed(key: str) -> float:  # the best of five runs, to leave out the machine's noise
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(50):
                keys.tenant_for(key)
            runs.append(time.perf_counter() - started)
        return min(runs)

    first, last, none = timed("key-0"), timed("key-199"), timed("nobody")
    assert max(first, last, none) < 3 * min(first, last, none)


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 1, timeout_s=0.5)
    try:
        assert [await limiter.hit("t") for _ in range(3)] == [None, None, None]
        problem = await limiter.ping()
        assert problem is not None and "unreachable" in problem and "127.0.0.1" not in problem
    finally:
        await limiter.close()
