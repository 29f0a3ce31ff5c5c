"""The chatbot client example against a real ``majordome serve`` on loopback, over scripted models."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from majordome import Majordome, MajordomeConfig
from majordome.feedback import FeedbackLoop, SQLiteEventStore
from majordome.server import ApiKeys, BackgroundServer, create_app
from majordome.testing import Reply, ScriptedModel

CLIENT_PATH = Path(__file__).resolve().parents[2] / "examples" / "chatbot_client.py"
KEY = "sk-test-examples-0123456789abcdef"
HELLO = [{"role": "user", "content": "Say hello to a new fan."}]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chatbot_client_example", CLIENT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chatbot = _load()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    feedback = FeedbackLoop(SQLiteEventStore(tmp_path / "f.db"), spill_path=tmp_path / "s.jsonl")
    model = ScriptedModel(default=Reply("Welcome aboard, lovely to meet you"))
    mj = Majordome(MajordomeConfig(), providers={"*": model}, env={}, feedback=feedback)
    keys = ApiKeys()
    keys.add("creator_42", KEY)
    started = BackgroundServer(create_app(mj, keys)).start()
    yield started
    started.stop()


def test_ask_returns_the_answer_and_its_routing(server: BackgroundServer) -> None:
    client = chatbot.make_client(server.base_url, KEY, max_retries=0, timeout_s=20)
    result = chatbot.ask(client, HELLO, max_tokens=32)
    assert result.text == "Welcome aboard, lovely to meet you"
    assert result.trace_id and result.trace_id == result.majordome["trace_id"]
    assert result.model == result.majordome["model"] == result.majordome["decision"]["chosen"]
    assert result.headers["x-majordome-model"] == result.model
    assert result.usage is not None and result.usage["completion_tokens"] > 0
    text = chatbot.describe(result)
    assert result.trace_id in text and "served by scripted" in text and "why: " in text and "cost $" in text


def test_ask_stream_gives_deltas_then_the_routing(server: BackgroundServer) -> None:
    client = chatbot.make_client(server.base_url, KEY, max_retries=0, timeout_s=20)
    deltas: list[str] = []
    result = chatbot.ask_stream(client, HELLO, on_text=deltas.append)
    assert len(deltas) > 1 and "".join(deltas) == result.text == "Welcome aboard, lovely to meet you"
    assert result.trace_id == result.headers["x-majordome-trace-id"] == result.majordome["trace_id"]
    assert result.model == result.majordome["model"]
    assert result.usage is not None and result.usage["total_tokens"] > 0


def test_feedback_is_sent_and_errors_are_typed(server: BackgroundServer) -> None:
    client = chatbot.make_client(server.base_url, KEY, max_retries=0, timeout_s=20)
    result = chatbot.ask(client, HELLO)
    reply = chatbot.send_feedback(server.base_url, KEY, result.trace_id, "rating", 5, idempotency_key="k1")
    assert reply == {"trace_id": result.trace_id, "kind": "rating", "reward": 1.0, "stored": True, "learned": True}
    with pytest.raises(chatbot.FeedbackError) as caught:
        chatbot.send_feedback(server.base_url, KEY, "no-such-trace", "rating", 4)
    assert caught.value.status_code == 404 and caught.value.code == "trace_not_found"
    with pytest.raises(chatbot.FeedbackError) as bad:
        chatbot.send_feedback(server.base_url, KEY, result.trace_id, "rating", 9)
    assert bad.value.status_code == 400


def test_main_streams_prints_routing_and_rates(server: BackgroundServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = chatbot.main(["--base-url", server.base_url, "--api-key", KEY, "--stream", "--rate", "4", "Hello!"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == "Welcome aboard, lovely to meet you"
    assert "trace " in err and "why: " in err and "feedback: reward" in err


def test_main_reports_a_bad_key(server: BackgroundServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = chatbot.main(["--base-url", server.base_url, "--api-key", "sk-wrong", "Hello!"])
    assert code == 1 and "error:" in capsys.readouterr().err


def test_help_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, str(CLIENT_PATH), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0 and "--base-url" in done.stdout and "--stream" in done.stdout


def test_main_holds_a_conversation_from_stdin(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi there\n\nHow are you?\n"))
    monkeypatch.setenv("MAJORDOME_API_KEY", KEY)
    monkeypatch.setenv("MAJORDOME_BASE_URL", server.base_url)
    assert chatbot.main(["--system", "Be brief."]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["Welcome aboard, lovely to meet you"] * 2
    assert err.count("trace ") == 2
