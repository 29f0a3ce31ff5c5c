"""A real server on a loopback port over a Majordome whose models are scripted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from majordome import Majordome, MajordomeConfig
from majordome.feedback import FeedbackLoop, SQLiteEventStore
from majordome.server import ApiKeys, BackgroundServer, ServerLimits, create_app
from majordome.testing import Reply, ScriptedModel

KEY_A = "sk-test-tenant-a-0123456789abcdef"
KEY_B = "sk-test-tenant-b-fedcba9876543210"

Serve = Callable[..., BackgroundServer]


def keys() -> ApiKeys:
    api_keys = ApiKeys()
    api_keys.add("tenant-a", KEY_A)
    api_keys.add("tenant-b", KEY_B)
    return api_keys


@pytest.fixture
def feedback_loop(tmp_path: Path) -> FeedbackLoop:
    return FeedbackLoop(SQLiteEventStore(tmp_path / "f.db"), spill_path=tmp_path / "s.jsonl")


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(model, limits=..., feedback=..., **config)``: a started server, stopped after the test."""
    started: list[BackgroundServer] = []

    def start(
        model: ScriptedModel | None = None,
        *,
        limits: ServerLimits | None = None,
        feedback: FeedbackLoop | None = None,
        **config: Any,
    ) -> BackgroundServer:
        scripted = model or ScriptedModel(default=Reply("Hello from the scripted model"))
        mj = Majordome(MajordomeConfig(**config), providers={"*": scripted}, env={}, feedback=feedback)
        server = BackgroundServer(create_app(mj, keys(), limits=limits)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client() -> Callable[..., openai.OpenAI]:
    """``client(server, key=tenant A's)``: the real OpenAI client pointed at ``server``, no retries."""

    def make(server: BackgroundServer, key: str = KEY_A) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=20)

    return make


@pytest.fixture
def api_key() -> dict[str, str]:
    """Each test tenant's API key."""
    return {"tenant-a": KEY_A, "tenant-b": KEY_B}
