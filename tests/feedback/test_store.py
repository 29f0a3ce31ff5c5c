"""The event store: one suite run on SQLite (a file in tmp_path) and on a real PostgreSQL server
(a fresh schema per test, see ``scripts/services.sh``): idempotent writes, per-trace queries,
statistics on a hand-made dataset, the outcomes export read back by the benchmark reader, the
cost view, migrations and the refusal of a newer schema, errors that never show a password."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from majordome import BadRequestError, ConfigurationError, Message
from majordome.bench.readers import read_long_outcomes
from majordome.feedback.events import CallEvent, CostRow, DecisionEvent, Event, FeedbackEvent
from majordome.feedback.postgres import PostgresEventStore, describe_dsn
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.store import OUTCOME_COLUMNS, EventStore, StoreError, StoreRejected, StoreUnavailable

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Backend:
    """One database under test: ``open()`` opens (another) store on it, ``raw()`` runs SQL
    around the store, on a connection of its own."""

    kind: str
    open: Callable[[], EventStore]
    raw: Callable[[str], list[tuple[Any, ...]]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[EventStore] = []
    if request.param == "sqlite":
        path = tmp_path / "events.db"

        def open_store() -> EventStore:
            return SQLiteEventStore(path)

        def raw(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return conn.execute(sql).fetchall()

    else:
        import psycopg

        dsn = request.getfixturevalue("postgres_schema_dsn")

        def open_store() -> EventStore:
            return PostgresEventStore(dsn)

        def raw(sql: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                cursor = conn.execute(sql)
                return cursor.fetchall() if cursor.description else []

    def tracked() -> EventStore:
        store = open_store()
        opened.append(store)
        return store

    yield Backend(request.param, tracked, raw)
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> EventStore:
    return backend.open()


# -- a hand-made dataset -----------------------------------------------------------------------


def decision(trace: str, *, minutes: float = 0, prompt: str | None = "a prompt", **kw: Any) -> DecisionEvent:
    values: dict[str, Any] = {
        "trace_id": trace,
        "tenant": "creator_1",
        "chosen": "Llama-3.3-70B",
        "chain": ("Llama-3.3-70B", "DeepSeek-V3"),
        "policy": "priors/3",
        "intent": "fan_reply",
        "language": "fr",
        "candidates": ({"model": "Llama-3.3-70B", "quality": 0.8, "cost_usd": 0.0004, "latency_s": 1.2},),
        "features": {"intent_confidence": 0.9, "prompt_tokens": 12},
        "prompt": prompt,
        "created_at": T0 + timedelta(minutes=minutes),
        "event_id": f"d-{trace}",
    }
    values.update(kw)
    return DecisionEvent(**values)


def call(trace: str, *, minutes: float = 0, **kw: Any) -> CallEvent:
    values: dict[str, Any] = {
        "trace_id": trace,
        "tenant": "creator_1",
        "model": "Llama-3.3-70B",
        "intent": "fan_reply",
        "job_type": "chat.suggest",
        "deployment": "llama-eu",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.0001,
        "latency_s": 1.0,
        "served_by": "llama-eu",
        "created_at": T0 + timedelta(minutes=minutes),
        "event_id": f"c-{trace}",
    }
    values.update(kw)
    return CallEvent(**values)


def feedback(trace: str, reward: float | None, *, n: int = 0, kind: str = "rating", value: float = 4) -> FeedbackEvent:
    return FeedbackEvent(
        trace_id=trace,
        kind=kind,  # type: ignore[arg-type]
        value=value,
        reward=reward,
        detail={"n": n},
        created_at=T0 + timedelta(minutes=5),
        event_id=f"f-{trace}-{n}",
    )


# -- writing and reading -----------------------------------------------------------------------


def test_writing_an_event_twice_stores_it_once(store: EventStore, backend: Backend) -> None:
    events: list[Event] = [decision("t1"), call("t1"), feedback("t1", 0.75)]
    assert store.write(events) == 3
    assert store.write(events) == 0
    assert store.write([*events, feedback("t1", 0.5, n=1)]) == 1
    assert store.write([]) == 0
    counts = [backend.raw(f"SELECT COUNT(*) FROM majordome_{t}")[0][0] for t in ("decisions", "calls", "feedback")]
    assert counts == [1, 1, 2]


def test_events_read_back_equal_to_what_was_written(store: EventStore) -> None:
    wrote_decision = decision("t1", explored=True, job_type="chat.suggest")
    wrote_call = call("t1", status="error", error_class="ProviderTimeout", attempts=3, substituted=True)
    wrote_feedback = [feedback("t1", 0.75), feedback("t1", None, n=1, kind="revenue", value=12.5)]
    store.write([wrote_decision, wrote_call, *wrote_feedback])
    assert store.decision("t1") == wrote_decision
    assert store.calls("t1") == [wrote_call]
    assert store.feedback("t1") == wrote_feedback
    assert store.decision("nope") is None and store.calls("nope") == [] and store.feedback("nope") == []


def test_queries_are_per_trace_and_ordered_by_time(store: EventStore) -> None:
    first, retried = call("t1", minutes=1, event_id="c1"), call("t1", minutes=2, event_id="c2")
    early, late = (
        decision("t1", minutes=0, event_id="d1"),
        decision("t1", minutes=3, event_id="d2", chosen="Phi-4-mini"),
    )
    store.write([retried, late, call("t2"), early, first])
    assert store.calls("t1") == [first, retried]
    assert store.decision("t1") == late  # the latest decision of the trace
    assert [c.trace_id for c in store.calls("t2")] == ["t2"]


def test_text_postgres_cannot_hold_is_stored_readable(store: EventStore) -> None:
    wrote = decision("t1", prompt="nul \x00 here", features={"k\x00": "v\x00"})
    store.write([wrote])
    read = store.decision("t1")
    assert read is not None
    assert read.prompt is not None and read.prompt.startswith("nul ") and read.prompt.endswith(" here")
    assert len(read.features) == 1


def test_stats_on_a_hand_made_dataset(store: EventStore) -> None:
    events: list[Event] = [
        # fan_reply x Llama: 4 calls, latencies 1-4 s, one failure; rewards: t1 (0.5 and 1.0 -> 0.75),
        # t2 0.25, t3 only unmapped feedback (reward None), t4 none.
        call("t1", latency_s=1.0, cost_usd=0.1),
        call("t2", latency_s=2.0, cost_usd=0.2),
        call("t3", latency_s=3.0, cost_usd=0.3),
        call("t4", latency_s=4.0, cost_usd=0.4, status="error", error_class="ProviderTimeout"),
        feedback("t1", 0.5),
        feedback("t1", 1.0, n=1),
        feedback("t2", 0.25),
        feedback("t3", None, kind="revenue", value=3.0),
        # fan_reply x Phi-4-mini: one call, no feedback
        call("t5", model="Phi-4-mini", latency_s=0.5, cost_usd=0.01),
        # no intent x DeepSeek-V3
        call("t6", model="DeepSeek-V3", intent=None, latency_s=2.0, cost_usd=0.05),
        # outside the period, and another tenant: left out
        call("t7", minutes=-1, latency_s=100.0),
        call("t8", minutes=24 * 60, latency_s=100.0),
        call("t9", tenant="creator_2", latency_s=100.0, cost_usd=9.0),
        feedback("t9", 0.0),
    ]
    store.write(events)
    rows = store.stats(T0, T0 + DAY, tenant="creator_1")
    assert [(r.intent, r.model) for r in rows] == [
        (None, "DeepSeek-V3"),
        ("fan_reply", "Llama-3.3-70B"),
        ("fan_reply", "Phi-4-mini"),
    ]
    _, llama, phi = rows
    assert (llama.calls, llama.failures, llama.rewarded) == (4, 1, 2)
    assert llama.failure_rate == pytest.approx(0.25)
    assert llama.mean_reward == pytest.approx((0.75 + 0.25) / 2)
    assert llama.total_cost_usd == pytest.approx(1.0) and llama.mean_cost_usd == pytest.approx(0.25)
    assert llama.latency_p50_s == pytest.approx(2.5)
    assert llama.latency_p95_s == pytest.approx(3.85)  # interpolated: 3 + 0.85 * (4 - 3)
    assert (phi.calls, phi.rewarded, phi.mean_reward, phi.failure_rate) == (1, 0, None, 0.0)
    assert phi.latency_p50_s == phi.latency_p95_s == pytest.approx(0.5)

    everyone = {(r.intent, r.model): r for r in store.stats(T0, T0 + DAY)}
    assert everyone[("fan_reply", "Llama-3.3-70B")].calls == 5
    assert everyone[("fan_reply", "Llama-3.3-70B")].mean_reward == pytest.approx((0.75 + 0.25 + 0.0) / 3)
    assert store.stats(T0 + 2 * DAY, T0 + 3 * DAY) == []
    with pytest.raises(BadRequestError, match="no time zone"):
        store.stats(datetime(2026, 3, 1), datetime(2026, 3, 2))


def test_outcomes_export_is_read_by_the_benchmark_reader(store: EventStore, tmp_path: Path) -> None:
    store.write(
        [
            decision("t1", prompt="Salut, ça va ?", minutes=0),
            call("t1", input_tokens=10, output_tokens=5, cost_usd=0.00002),
            feedback("t1", 1.0),
            feedback("t1", 0.5, n=1),
            decision("t2", prompt="Write a caption", intent="caption_writing", language="en", minutes=1),
            call("t2", model="Phi-4-mini", intent="caption_writing", cost_usd=0.000003),
            feedback("t2", 0.25),
            # left out: no prompt recorded, no rewarded feedback, a failed call, a stand-in's answer
            decision("t3", prompt=None, minutes=2),
            call("t3"),
            feedback("t3", 1.0),
            decision("t4", minutes=3),
            call("t4"),
            feedback("t4", None, kind="conversion", value=1),
            decision("t5", minutes=4),
            call("t5", status="error", error_class="AllCandidatesFailed"),
            feedback("t5", 0.0),
            decision("t6", minutes=5),
            call("t6", substituted=True, served_by="local:smollm2"),
            feedback("t6", 0.0),
        ]
    )
    rows = list(store.outcomes())
    assert [tuple(r) for r in rows] == [OUTCOME_COLUMNS] * 2
    assert rows[0] == {
        "prompt_id": "t1",
        "prompt": "Salut, ça va ?",
        "model": "Llama-3.3-70B",
        "score": 0.75,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": 0.00002,
        "intent": "fan_reply",
        "language": "fr",
    }
    path = tmp_path / "outcomes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset = read_long_outcomes(path)
    assert dataset.prompt_ids == ["t1", "t2"]
    assert dataset.prompts == ["Salut, ça va ?", "Write a caption"]
    assert dataset.models == ["Llama-3.3-70B", "Phi-4-mini"]
    assert dataset.scores[0, 0] == pytest.approx(0.75) and dataset.scores[1, 1] == pytest.approx(0.25)
    assert dataset.groups == ["fan_reply", "caption_writing"]

    assert [r["prompt_id"] for r in store.outcomes(since=T0 + timedelta(minutes=1))] == ["t2"]
    assert [r["prompt_id"] for r in store.outcomes(until=T0 + timedelta(minutes=1))] == ["t1"]


def test_the_cost_view_has_the_platform_columns(store: EventStore, backend: Backend) -> None:
    calls = [call("t1", minutes=1), call("t2", tenant="creator_2", minutes=2, cost_usd=0.5, job_type=None)]
    store.write(calls)
    assert store.cost_rows(T0, T0 + DAY) == [CostRow.from_call(c) for c in calls]
    assert store.cost_rows(T0, T0 + DAY, tenant="creator_2") == [CostRow.from_call(calls[1])]
    if backend.kind == "sqlite":
        columns = [row[1] for row in backend.raw("PRAGMA table_info(majordome_cost)")]
    else:
        columns = [
            row[0]
            for row in backend.raw(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'majordome_cost' AND table_schema = current_schema() ORDER BY ordinal_position"
            )
        ]
    assert tuple(columns) == CostRow.COLUMNS
    [(total, metadata)] = backend.raw(
        "SELECT total_tokens, metadata FROM majordome_cost WHERE creator_id = 'creator_2'"
    )
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert total == 120
    assert metadata["trace_id"] == "t2" and metadata["deployment"] == "llama-eu" and metadata["attempts"] == 1


# -- schema ------------------------------------------------------------------------------------


def test_migrations_are_recorded_and_applied_once(backend: Backend) -> None:
    store = backend.open()
    assert store.schema_version() == 3
    store.write([call("t1")])
    again = backend.open()  # a second store on the same database: nothing to migrate
    assert again.schema_version() == 3 and again.calls("t1") == [call("t1")]
    rows = backend.raw("SELECT version, description, applied_at FROM majordome_migrations ORDER BY version")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert "decisions" in rows[0][1] and "majordome_cost" in rows[1][1] and "learner" in rows[2][1]
    assert all(r[2] for r in rows)


def test_a_schema_newer_than_the_code_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.raw(
        "INSERT INTO majordome_migrations (version, applied_at, description) "
        "VALUES (7, CURRENT_TIMESTAMP, 'from the future')"
    )
    with pytest.raises(ConfigurationError, match="schema version 7, newer than this majordome's 3"):
        backend.open()


# -- failures ----------------------------------------------------------------------------------


def test_an_unusable_sqlite_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreUnavailable, match="cannot open the event store"):
        SQLiteEventStore(tmp_path / "a-file" / "events.db")


def test_an_unreachable_postgres_is_store_unavailable_without_the_password() -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://majordome:s3cret-Passw0rd@127.0.0.1:{port}/events"
    with pytest.raises(StoreUnavailable) as caught:
        PostgresEventStore(dsn, connect_timeout_s=2)
    message = str(caught.value)
    assert "s3cret-Passw0rd" not in message and "s3cret" not in repr(caught.value)
    assert f"majordome@127.0.0.1:{port}/events" in message


def test_a_dsn_is_described_without_its_password() -> None:
    assert describe_dsn("host=db.internal port=5433 dbname=platform user=app password=hunter2") == (
        "app@db.internal:5433/platform"
    )
    assert describe_dsn("postgresql://app:hunter2@db.internal/platform") == "app@db.internal/platform"
    assert describe_dsn("this is not = a dsn 'at all") == "<unparseable DSN>"


def test_a_closed_store_says_so(store: EventStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write([call("t1")])


def test_postgres_schema_argument_keeps_tables_apart(postgres_schema_dsn: str) -> None:
    import uuid

    schema = f"events_{uuid.uuid4().hex[:12]}"
    with PostgresEventStore(postgres_schema_dsn, schema=schema) as one:
        one.write([call("t1")])
        assert one.calls("t1") == [call("t1")]
    with PostgresEventStore(postgres_schema_dsn) as other:  # the DSN's own schema: empty
        assert other.calls("t1") == []
    with pytest.raises(ConfigurationError, match="schema name"):
        PostgresEventStore(postgres_schema_dsn, schema="bad; DROP TABLE x")
    import psycopg

    with psycopg.connect(postgres_schema_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


_WRITER_PROCESS = """
import sys
from majordome.feedback.events import CallEvent
from majordome.feedback.sqlite import SQLiteEventStore
path, worker = sys.argv[1], sys.argv[2]
store = SQLiteEventStore(path)
for batch in range(20):
    store.write([CallEvent(trace_id=f"{worker}-{batch}-{i}", tenant="c", model="m", event_id=f"{worker}-{batch}-{i}")
                 for i in range(25)])
store.close()
"""


def test_several_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    workers = [
        subprocess.Popen([sys.executable, "-c", _WRITER_PROCESS, str(path), f"w{n}"], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM majordome_calls").fetchone()[0] == 3 * 20 * 25
        assert conn.execute("SELECT COUNT(*) FROM majordome_migrations").fetchone()[0] == 3
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_value_the_database_cannot_hold_is_refused_not_unavailable(store: EventStore) -> None:
    with pytest.raises(StoreRejected):
        store.write([call("t1"), call("t2", input_tokens=2**70)])
    assert store.calls("t1") == []  # the batch is one transaction
    store.write([call("t1")])
    assert [c.event_id for c in store.calls("t1")] == ["c-t1"]


def test_learner_states_are_versioned_written_once_and_shared(backend: Backend) -> None:
    from majordome.feedback.learner import BanditQuality, context_of
    from majordome.router import Router
    from majordome.router.quality import PriorQuality

    store = backend.open()
    router = Router(models=["phi-4-mini", "deepseek-v3"])
    models = ["phi-4-mini", "deepseek-v3"]
    one, two = (BanditQuality(PriorQuality(router.policy, models), models) for _ in range(2))
    assert store.load_learner_state() is None  # type: ignore[attr-defined]
    assert store.save_learner_state(1, one.to_json(), "first")  # type: ignore[attr-defined]
    assert not store.save_learner_state(1, "{}", "again")  # type: ignore[attr-defined]
    loaded = store.load_learner_state(1)  # type: ignore[attr-defined]
    assert loaded is not None and loaded.note == "first" and loaded.created_at > 0
    inputs = router.inputs([router.features([Message(role="user", content="hi")], intent="fan_reply")])
    one.update("phi-4-mini", context_of(inputs)[0], 0.0, 0.7)

    assert one.sync(store) == 2  # type: ignore[arg-type]
    other = backend.open()  # another worker's connection
    assert two.sync(other) == 2 and two.observations("phi-4-mini") == 1  # type: ignore[arg-type]
    assert [v for v, _, _ in other.learner_versions()] == [1, 2]  # type: ignore[attr-defined]
