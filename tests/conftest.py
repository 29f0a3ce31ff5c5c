"""Fixtures shared by the whole suite.

Every test runs inside :func:`majordome.testing.block_network`: a test that tries to reach a
real host fails at teardown, even when the error was swallowed on the way.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import pytest

from majordome import (
    Answer,
    Completed,
    Majordome,
    MajordomeConfig,
    MajordomeError,
    ReasoningDelta,
    RetryPolicy,
    TextDelta,
)
from majordome.testing import StubLLMServer, StubReply, block_network


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[list[str]]:
    """Refuse non-loopback connections; fail the test if one was attempted."""
    with block_network() as violations:
        yield violations
    if violations:
        pytest.fail(f"the test tried to reach the network: {violations}", pytrace=False)


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    """A stub chat-completions server on loopback, stopped after the test."""
    with StubLLMServer() as server:
        yield server


# -- the whole stack against the stub ----------------------------------------------------------

Api = Literal["openai", "azure-ai-inference"]
Mode = Literal["async", "sync"]
MODES: tuple[Mode, ...] = ("async", "sync")

# Catalogue slots not used by the stack tests: DeepSeek-V3 is chosen for a plain request and
# Mistral-Large is its first fallback.
_DISABLED = ("DEEPSEEK_R1", "PHI_4_MULTIMODAL", "PHI_4_MINI", "LLAMA_3_3_70B", "AZURE_SPEECH_BATCH")
KEYS = {"DEEPSEEK_V3": "v3-key-0123456789", "MISTRAL_LARGE": "mistral-key-9876543210"}


@dataclass
class Outcome:
    """What one call through Majordome gave, in a shape that compares across sync and async."""

    text: str | None = None
    error: MajordomeError | None = None
    attempts: list[tuple[str, str, int | None]] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    answer: Answer | None = None

    @property
    def error_type(self) -> type[BaseException] | None:
        return type(self.error) if self.error is not None else None

    def same_as(self, other: Outcome) -> bool:
        partial = getattr(self.error, "partial_text", None), getattr(other.error, "partial_text", None)
        return (self.text, self.error_type, self.attempts, self.deltas) == (
            other.text,
            other.error_type,
            other.attempts,
            other.deltas,
        ) and partial[0] == partial[1]


class Stack:
    """Builds a Majordome whose DeepSeek-V3 and Mistral-Large slots call ``server`` over ``api``,
    and runs one request through it, asynchronously or synchronously, on a fresh instance (so
    circuit breakers start closed and the stub's queue is the only script)."""

    def __init__(self, server: StubLLMServer, api: Api) -> None:
        self.server = server
        self.api = api
        self.env: dict[str, str] = {f"MAJORDOME_MODEL__{name}__ENABLED": "false" for name in _DISABLED}
        for slot, key in KEYS.items():
            if api == "openai":
                self.env[f"MAJORDOME_MODEL__{slot}__API"] = "openai"
                self.env[f"MAJORDOME_MODEL__{slot}__ENDPOINT"] = server.openai_base_url
                self.env[f"MAJORDOME_MODEL__{slot}__AUTH"] = "none"
            else:
                self.env[f"AZURE_{slot}_ENDPOINT"] = server.azure_endpoint
                self.env[f"AZURE_{slot}_KEY"] = key

    @property
    def endpoint(self) -> str:
        return self.server.openai_base_url if self.api == "openai" else self.server.azure_endpoint

    def majordome(self, **config: Any) -> Majordome:
        config.setdefault("retry", RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05))
        return Majordome(MajordomeConfig(**config), env=self.env)

    def ask(
        self, mode: Mode, request: Mapping[str, Any], replies: tuple[StubReply, ...] = (), **config: Any
    ) -> Outcome:
        return self._run(mode, "ask", request, replies, config)

    def stream(
        self, mode: Mode, request: Mapping[str, Any], replies: tuple[StubReply, ...] = (), **config: Any
    ) -> Outcome:
        return self._run(mode, "stream", request, replies, config)

    def both(
        self,
        kind: Literal["ask", "stream"],
        request: Mapping[str, Any],
        replies: tuple[StubReply, ...] = (),
        **config: Any,
    ) -> Outcome:
        """Run the request asynchronously and synchronously; they must give the same outcome."""
        outcomes = [self._run(mode, kind, request, replies, config) for mode in MODES]
        assert outcomes[0].same_as(outcomes[1]), f"async and sync differ:\n{outcomes[0]}\n{outcomes[1]}"
        return outcomes[0]

    def _run(
        self, mode: Mode, kind: str, request: Mapping[str, Any], replies: tuple[StubReply, ...], config: dict[str, Any]
    ) -> Outcome:
        self.server.enqueue(*replies)
        mj = self.majordome(**config)
        outcome = Outcome()
        started = time.monotonic()
        try:
            if mode == "async":
                asyncio.run(self._async(mj, kind, dict(request), outcome))
            else:
                with mj:
                    self._sync(mj, kind, dict(request), outcome)
        except MajordomeError as error:
            outcome.error = error
            outcome.attempts = _attempts_of(error)
        outcome.elapsed_s = time.monotonic() - started
        return outcome

    @staticmethod
    async def _async(mj: Majordome, kind: str, request: dict[str, Any], outcome: Outcome) -> None:
        async with mj:
            if kind == "ask":
                _record_answer(outcome, await mj.ask(request))
            else:
                async for event in mj.stream(request):
                    _record_event(outcome, event)

    @staticmethod
    def _sync(mj: Majordome, kind: str, request: dict[str, Any], outcome: Outcome) -> None:
        if kind == "ask":
            _record_answer(outcome, mj.ask_sync(request))
        else:
            for event in mj.stream_sync(request):
                _record_event(outcome, event)


def _record_answer(outcome: Outcome, answer: Answer) -> None:
    outcome.answer = answer
    outcome.text = answer.text
    outcome.attempts = [(a.model, a.outcome, a.status_code) for a in answer.attempts]


def _record_event(outcome: Outcome, event: TextDelta | ReasoningDelta | Completed) -> None:
    if isinstance(event, TextDelta):
        outcome.deltas.append(event.text)
    elif isinstance(event, Completed):
        _record_answer(outcome, event.answer)


def _attempts_of(error: MajordomeError) -> list[tuple[str, str, int | None]]:
    """The failures an error carries (``causes`` of the chain), as (model, error class, status)."""
    causes = getattr(error, "causes", ())
    return [(model, type(cause).__name__, getattr(cause, "status_code", None)) for model, cause in causes]


@pytest.fixture
def make_stack(stub: StubLLMServer) -> Callable[[Api], Stack]:
    return lambda api: Stack(stub, api)


# -- real PostgreSQL and Redis servers (scripts/services.sh) -----------------------------------
#
# `scripts/services.sh up` (run by `make test`) starts throwaway servers on loopback and writes
# their addresses to .services/env; the variables win when set in the environment. Without a
# server, a test that needs it skips with the reason (shown by `-ra`); under CI=true it fails.

_SERVICES_ENV = Path(__file__).resolve().parent.parent / ".services" / "env"


def _services_env() -> dict[str, str]:
    """The variables of .services/env (shell-quoted ``NAME=value`` lines), when the file exists."""
    values: dict[str, str] = {}
    if not _SERVICES_ENV.is_file():
        return values
    for line in _SERVICES_ENV.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if len(words) == 1 and "=" in words[0]:
            name, _, value = words[0].partition("=")
            values[name] = value
    return values


def _service_setting(name: str) -> tuple[str | None, str]:
    """(value of MAJORDOME_TEST_<name>, why it is missing); the environment first, then the file."""
    variable = f"MAJORDOME_TEST_{name}"
    value = os.environ.get(variable)
    if value:
        return value, ""
    from_file = _services_env()
    if from_file.get(variable):
        return from_file[variable], ""
    service = name.split("_")[0]
    reason = os.environ.get(f"MAJORDOME_TEST_{service}_UNAVAILABLE") or from_file.get(
        f"MAJORDOME_TEST_{service}_UNAVAILABLE"
    )
    if reason:
        return None, f"{variable} is not set: {reason}"
    return None, f"{variable} is not set (run `scripts/services.sh up`, or `make test`)"


def _service_missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs this server: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of the test PostgreSQL server's ``majordome_test`` database, checked reachable."""
    dsn, reason = _service_setting("POSTGRES_DSN")
    if dsn is None:
        _service_missing(reason)
    try:
        import psycopg
    except ImportError:
        _service_missing("psycopg is not installed (pip install 'majordome[postgres]')")
    failure = ""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        failure = f"PostgreSQL at MAJORDOME_TEST_POSTGRES_DSN is unreachable: {type(error).__name__}: {error}"
    if failure:
        _service_missing(failure)
    return dsn


@pytest.fixture
def postgres_schema_dsn(postgres_dsn: str) -> Iterator[str]:
    """A DSN whose ``search_path`` is a fresh, empty schema, dropped (with its tables) after the test."""
    import psycopg
    from psycopg import conninfo, sql

    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield conninfo.make_conninfo(postgres_dsn, options=f"-csearch_path={schema}")
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the test Redis server, checked reachable (PING)."""
    url, reason = _service_setting("REDIS_URL")
    if url is None:
        _service_missing(reason)
    try:
        import redis
    except ImportError:
        _service_missing("redis is not installed (pip install 'majordome[redis]')")
    failure = ""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as error:
        failure = f"Redis at MAJORDOME_TEST_REDIS_URL is unreachable: {type(error).__name__}: {error}"
    if failure:
        _service_missing(failure)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; the keys under it are deleted after the test."""
    import redis

    prefix = f"majordome-test:{uuid.uuid4().hex[:16]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
