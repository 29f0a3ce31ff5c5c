"""Chat completions through the real OpenAI client, plain and streamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from majordome import ProviderConnectionError, ProviderHTTPError
from majordome.testing import Reply, ScriptedModel

HELLO = [{"role": "user", "content": "Say hello to a new fan."}]
Serve = Callable[..., Any]
Client = Callable[..., openai.OpenAI]


def test_completion_routes_and_says_how(serve: Serve, client: Client) -> None:
    server = serve(ScriptedModel(default=Reply("Welcome aboard, lovely to meet you")))
    raw = client(server).chat.completions.with_raw_response.create(model="majordome", messages=HELLO, max_tokens=32)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Welcome aboard, lovely to meet you"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    extra: dict[str, Any] = completion.model_extra or {}
    info = extra["majordome"]
    assert completion.model == info["model"] == info["decision"]["chosen"]
    assert info["served_by"] == "scripted" and info["substituted"] is False
    assert info["decision"]["chain"][0] == info["model"] and info["decision"]["reason"]
    assert raw.headers["x-majordome-trace-id"] == info["trace_id"]
    assert raw.headers["x-majordome-model"] == completion.model
    assert float(raw.headers["x-majordome-cost-usd"]) == pytest.approx(info["cost_usd"], abs=1e-8)


def test_request_fields_reach_the_model(serve: Serve, client: Client) -> None:
    scripted = ScriptedModel(default=Reply('{"ok": true}'))
    server = serve(scripted)
    completion = client(server).chat.completions.create(
        model="majordome",
        messages=[{"role": "developer", "content": "Answer in JSON."}, *HELLO],
        max_completion_tokens=40,
        temperature=0.3,
        response_format={"type": "json_object"},
        extra_body={"intent": "reasoning", "metadata": {"language": "fr"}},
    )
    sent = scripted.calls[-1]
    assert sent.json_mode is True and sent.temperature == 0.3 and sent.max_output_tokens == 40
    assert sent.messages[0].role == "system"
    info = (completion.model_extra or {})["majordome"]["decision"]
    assert info["intent"] == "reasoning" and info["language"] == "fr"


def test_a_catalogue_model_is_pinned_and_an_unknown_one_is_404(serve: Serve, client: Client) -> None:
    server = serve()
    pinned = client(server).chat.completions.create(model="Mistral-Large", messages=HELLO)
    assert pinned.model == "mistral-large"
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="gpt-17-ultra", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


def test_streaming_sends_role_deltas_finish_usage_and_done(serve: Serve, client: Client) -> None:
    server = serve(ScriptedModel(default=Reply("one two three four")))
    with client(server).chat.completions.with_streaming_response.create(
        model="majordome", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as response:
        trace_id = response.headers["x-majordome-trace-id"]
        chunks = list(response.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    info = (last.model_extra or {})["majordome"]
    assert info["trace_id"] == trace_id and last.model == info["model"]


def test_streaming_without_usage_puts_majordome_on_the_finish_chunk(serve: Serve, client: Client) -> None:
    server = serve(ScriptedModel(default=Reply("short answer")))
    chunks = list(client(server).chat.completions.create(model="majordome", messages=HELLO, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "majordome" in (chunks[-1].model_extra or {})
    assert all(c.usage is None for c in chunks)


def test_raw_stream_ends_with_done(serve: Serve, api_key: dict[str, str]) -> None:
    server = serve(ScriptedModel(default=Reply("a b")))
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/chat/completions",
        json={"messages": HELLO, "stream": True},
        headers={"Authorization": f"Bearer {api_key['tenant-a']}"},
        timeout=20,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_a_stream_failing_midway_ends_with_an_error_chunk(serve: Serve, client: Client) -> None:
    cut = Reply("never finished text", fail_after_chunks=1, error=ProviderConnectionError("reset"))
    server = serve(ScriptedModel(default=cut))
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for c in client(server).chat.completions.create(model="majordome", messages=HELLO, stream=True):
            received.extend(ch.delta.content or "" for ch in c.choices)
    assert "".join(received) == "never"
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "provider_error"


def test_a_failure_before_the_first_token_is_an_http_error(serve: Serve, client: Client) -> None:
    server = serve(ScriptedModel(default=Reply(error=ProviderHTTPError("upstream down", status_code=400))))
    with pytest.raises(openai.APIStatusError) as caught:
        list(client(server).chat.completions.create(model="majordome", messages=HELLO, stream=True))
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "all_candidates_failed"
    assert "upstream down" not in body["message"]  # upstream messages stay in the logs


def test_provider_failures_are_502_and_a_spent_budget_402(serve: Serve, client: Client) -> None:
    failing = serve(ScriptedModel(default=Reply(error=ProviderHTTPError("boom", status_code=400))))
    with pytest.raises(openai.APIStatusError) as caught:
        client(failing).chat.completions.create(model="majordome", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-majordome-trace-id"]
    broke = serve(budget_daily_usd=0.0)
    with pytest.raises(openai.APIStatusError) as spent:
        client(broke).chat.completions.create(model="majordome", messages=HELLO)
    assert spent.value.status_code == 402
    assert isinstance(spent.value.body, dict) and spent.value.body["code"] == "budget_exceeded"


def test_bad_requests_are_400_in_openai_format(serve: Serve, api_key: dict[str, str]) -> None:
    server = serve()
    url, auth = f"{server.base_url}/v1/chat/completions", {"Authorization": f"Bearer {api_key['tenant-a']}"}
    cases: list[Any] = [
        b"{not json",
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": HELLO, "n": 3},
        {"messages": HELLO, "temperature": 9},
    ]
    for body in cases:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = httpx.post(url, headers=auth, timeout=10, **kwargs)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_a_passed_deadline_is_504(serve: Serve, client: Client) -> None:
    server = serve(ScriptedModel(default=Reply("too late", delay_s=2.0)), default_deadline_s=0.3)
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(model="majordome", messages=HELLO)
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "deadline_exceeded"


def test_a_configuration_error_is_500_and_its_message_stays_in_the_logs(serve: Serve, client: Client) -> None:
    from majordome import ConfigurationError

    secretive = ConfigurationError("AZURE_DEEPSEEK_V3_KEY=sk-live-should-not-leak is refused")
    server = serve(ScriptedModel(default=Reply(error=secretive)))
    with pytest.raises(openai.InternalServerError) as caught:
        client(server).chat.completions.create(model="majordome", messages=HELLO)
    assert caught.value.status_code == 500
    assert "sk-live" not in caught.value.response.text and "AZURE" not in caught.value.response.text
