"""The event writer: batching, the spill file when the store fails (then replay), a bounded spill
file, corrupt spill lines, a full queue, events the store refuses, flush and close. The store is
a real SQLite file; a wrapper makes it fail, block or refuse on demand."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from majordome import BadRequestError, ConfigurationError
from majordome.feedback.events import CallEvent, CostRow, DecisionEvent, Event, FeedbackEvent
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.store import EventStore, StatsRow, StoreRejected, StoreUnavailable
from majordome.feedback.writer import EventWriter, WriterClosed


class ControlledStore(EventStore):
    """A real SQLite store that fails (``down``), waits (``gate`` cleared) or refuses batches
    holding a trace id in ``poison``, and records the size of each batch it wrote."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteEventStore(path)
        self.down = False
        self.poison: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []
        self.attempts = 0
        self.budget: int | None = None  # batches it writes before going down

    def write(self, events: Sequence[Event]) -> int:
        self.attempts += 1
        self.gate.wait(30)
        if self.budget is not None:
            self.down = self.down or self.budget == 0
            self.budget = max(0, self.budget - 1)
        if self.down:
            raise StoreUnavailable("the test's store is down")
        if any(e.trace_id in self.poison for e in events):
            raise StoreRejected("the test's store refuses poison")
        self.batches.append(len(events))
        return self.inner.write(events)

    def decision(self, trace_id: str) -> DecisionEvent | None:
        return self.inner.decision(trace_id)

    def calls(self, trace_id: str) -> list[CallEvent]:
        return self.inner.calls(trace_id)

    def feedback(self, trace_id: str) -> list[FeedbackEvent]:
        return self.inner.feedback(trace_id)

    def stats(self, since: datetime, until: datetime, tenant: str | None = None) -> list[StatsRow]:
        return self.inner.stats(since, until, tenant)

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
        return self.inner.outcomes(since, until)

    def cost_rows(self, since: datetime, until: datetime, tenant: str | None = None) -> list[CostRow]:
        return self.inner.cost_rows(since, until, tenant)

    def schema_version(self) -> int:
        return self.inner.schema_version()

    def close(self) -> None:
        self.inner.close()

    def stored_ids(self) -> set[str]:
        rows = self.inner._fetch("SELECT event_id FROM majordome_calls")
        return {r[0] for r in rows}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ControlledStore]:
    store = ControlledStore(tmp_path / "events.db")
    yield store
    store.gate.set()
    store.close()


@pytest.fixture
def spill(tmp_path: Path) -> Path:
    return tmp_path / "spill" / "events.jsonl"


def event(n: int, prefix: str = "e") -> CallEvent:
    return CallEvent(trace_id=f"{prefix}{n}", tenant="creator_1", model="Phi-4-mini", event_id=f"{prefix}{n}")


def spilled_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines() if line.strip()]


def spilled_ids_lenient(path: Path) -> list[str]:
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["event_id"])
        except ValueError:
            continue
    return ids


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        time.sleep(0.02)


# -- batching and flushing ---------------------------------------------------------------------


async def test_events_are_written_in_batches(store: ControlledStore, spill: Path) -> None:
    async with EventWriter(store, spill, batch_size=50, flush_interval_s=5.0) as writer:
        for n in range(120):
            writer.submit(event(n))
        await writer.flush()
        assert store.stored_ids() == {f"e{n}" for n in range(120)}
        assert sum(store.batches) == 120 and max(store.batches) <= 50 and len(store.batches) < 12
        metrics = writer.metrics
        assert (metrics.submitted, metrics.written, metrics.acknowledged, metrics.spilled) == (120, 120, 120, 0)
        assert metrics.queued == 0


async def test_a_partial_batch_waits_for_the_interval_not_longer(store: ControlledStore, spill: Path) -> None:
    async with EventWriter(store, spill, batch_size=500, flush_interval_s=0.3) as writer:
        for n in range(3):
            writer.submit(event(n))
        await asyncio.sleep(0.1)
        assert store.stored_ids() == set()  # still gathering a batch
        await asyncio.to_thread(eventually, lambda: len(store.stored_ids()) == 3, 5.0)
        assert store.batches == [3]


def test_the_sync_api_flushes_and_closes(store: ControlledStore, spill: Path) -> None:
    with EventWriter(store, spill, flush_interval_s=10.0) as writer:
        writer.submit(event(1))
        assert writer.flush_sync(timeout=10)
        assert store.stored_ids() == {"e1"}
        writer.submit(event(2))
    assert store.stored_ids() == {"e1", "e2"}  # close() wrote what was queued
    with pytest.raises(WriterClosed):
        writer.submit(event(3))
    assert writer.flush_sync(timeout=1)  # nothing left to wait for


def test_only_events_are_accepted(store: ControlledStore, spill: Path) -> None:
    with EventWriter(store, spill) as writer, pytest.raises(BadRequestError, match="not an event: dict"):
        writer.submit({"trace_id": "t"})  # type: ignore[arg-type]


def test_one_writer_per_spill_file(store: ControlledStore, spill: Path) -> None:
    with EventWriter(store, spill), pytest.raises(ConfigurationError, match="in use by another event writer"):
        EventWriter(store, spill)
    EventWriter(store, spill).close_sync()  # free again once the first one closed


# -- the spill file ----------------------------------------------------------------------------


async def test_a_failing_store_spills_then_the_spill_is_replayed(
    store: ControlledStore, spill: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="majordome.feedback")
    async with EventWriter(store, spill, batch_size=10, flush_interval_s=0.01) as writer:
        store.down = True
        for n in range(30):
            writer.submit(event(n))
        await writer.flush()
        metrics = writer.metrics
        assert (metrics.spilled, metrics.acknowledged, metrics.written) == (30, 30, 0)
        assert store.stored_ids() == set()
        assert spilled_ids(spill) == [f"e{n}" for n in range(30)]
        assert "feedback_store_unavailable" in caplog.text

        store.down = False  # the writer tries again after its back-off (0.5 s)
        await asyncio.to_thread(eventually, lambda: writer.metrics.replayed == 30)
        assert store.stored_ids() == {f"e{n}" for n in range(30)}
        await asyncio.to_thread(eventually, lambda: spill.stat().st_size == 0)
        writer.submit(event(99))
        await writer.flush()
        assert writer.metrics.written == 1 and "e99" in store.stored_ids()


def test_the_spill_file_is_replayed_at_start_up(store: ControlledStore, spill: Path) -> None:
    store.down = True
    with EventWriter(store, spill, batch_size=8) as writer:
        for n in range(20):
            writer.submit(event(n))
    assert len(spilled_ids(spill)) == 20
    store.down = False
    with EventWriter(store, spill) as writer:
        assert writer.flush_sync(timeout=10)  # waits for the start-up replay
        assert writer.metrics.replayed == 20
        assert store.stored_ids() == {f"e{n}" for n in range(20)}
    assert spill.read_bytes() == b""


def test_the_spill_file_is_bounded_dropping_the_oldest(
    store: ControlledStore, spill: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="majordome.feedback")
    line = len(event(10).to_json()) + 1
    store.down = True
    with EventWriter(store, spill, batch_size=5, spill_max_bytes=12 * line) as writer:
        for n in range(10, 50):  # ids of one width, so every line has the same size
            writer.submit(event(n))
        assert writer.flush_sync(timeout=10)
        metrics = writer.metrics
        kept = spilled_ids(spill)
        assert spill.stat().st_size <= 12 * line
        assert kept == [f"e{n}" for n in range(50 - len(kept), 50)]  # the newest
        assert metrics.spilled == 40 and metrics.dropped == 40 - len(kept) > 0
        assert "feedback_spill_full" in caplog.text
        store.down = False
        eventually(lambda: writer.metrics.replayed == len(kept))
    assert store.stored_ids() == set(kept)


def test_corrupt_spill_lines_are_skipped_counted_and_reported(
    store: ControlledStore, spill: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="majordome.feedback")
    bad_rating = json.dumps({"type": "feedback", "trace_id": "t", "kind": "rating", "value": 9, "event_id": "x",
                             "created_at": "2026-03-01T12:00:00+00:00"})  # fmt: skip
    lines = [event(1).to_json(), "garbage{", event(2).to_json(), event(3).to_json()[:40], bad_rating, "",
             event(4).to_json()]  # fmt: skip
    spill.parent.mkdir(parents=True)
    spill.write_text("\n".join(lines) + "\n")
    with EventWriter(store, spill) as writer:
        assert writer.flush_sync(timeout=10)
        assert store.stored_ids() == {"e1", "e2", "e4"}
        assert writer.metrics.corrupt_lines == 3 and writer.metrics.replayed == 3
    [record] = [r for r in caplog.records if "feedback_spill_corrupt_lines" in r.getMessage()]
    assert json.loads(record.getMessage())["lines"] == [2, 4, 5]
    assert spill.read_bytes() == b""
    corrupt = spill.with_name(spill.name + ".corrupt").read_text().splitlines()
    assert corrupt == [lines[1], lines[3], lines[4]]


def test_a_replay_interrupted_by_the_store_resumes_where_it_stopped(store: ControlledStore, spill: Path) -> None:
    lines = [event(n).to_json() for n in range(30)]
    lines.insert(25, "not an event")  # after the point where the store fails
    spill.parent.mkdir(parents=True)
    spill.write_text("\n".join(lines) + "\n")
    store.budget = 2  # two batches of ten, then down
    with EventWriter(store, spill, batch_size=10) as writer:
        assert writer.flush_sync(timeout=10)
        assert writer.metrics.replayed == 20 and writer.metrics.corrupt_lines == 1
        assert store.stored_ids() == {f"e{n}" for n in range(20)}
        assert len(spilled_ids_lenient(spill)) == 30  # the file stays until all of it is in
        store.budget, store.down = None, False
        eventually(lambda: writer.metrics.replayed == 30)
        assert writer.metrics.corrupt_lines == 1  # reported once
        assert store.batches == [10, 10, 10]  # the first twenty were not written again
    assert spill.read_bytes() == b""


def test_a_torn_last_line_does_not_spoil_the_next_one(store: ControlledStore, spill: Path) -> None:
    spill.parent.mkdir(parents=True)
    spill.write_text(event(1).to_json() + "\n" + event(2).to_json()[:30])  # killed mid-write
    store.down = True
    with EventWriter(store, spill) as writer:
        writer.submit(event(3))
        assert writer.flush_sync(timeout=10)
        store.down = False
        eventually(lambda: writer.metrics.replayed == 2)
        assert writer.metrics.corrupt_lines == 1
    assert store.stored_ids() == {"e1", "e3"}


async def test_a_full_queue_goes_to_the_spill_file_without_blocking(store: ControlledStore, spill: Path) -> None:
    store.gate.clear()  # the store hangs: the thread is stuck in its first write
    async with EventWriter(store, spill, batch_size=4, queue_size=4, flush_interval_s=0.0) as writer:
        writer.submit(event(0))
        await asyncio.to_thread(eventually, lambda: store.attempts == 1)
        slowest = 0.0
        for n in range(1, 40):
            started = time.perf_counter()
            writer.submit(event(n))
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.05  # appended to a file at worst, never waiting for the store
        assert len(spilled_ids(spill)) == 39 - 4  # beyond the four queued
        store.gate.set()
        await writer.flush()
        assert writer.metrics.acknowledged == 40
        await asyncio.to_thread(eventually, lambda: len(store.stored_ids()) == 40)
        assert writer.metrics.submitted == 40 and writer.metrics.spilled == 35


async def test_events_the_store_refuses_are_counted_and_the_rest_written(
    store: ControlledStore, spill: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="majordome.feedback")
    store.poison = {"e3"}
    async with EventWriter(store, spill, batch_size=10) as writer:
        for n in range(10):
            writer.submit(event(n))
        await writer.flush()
        metrics = writer.metrics
        assert (metrics.rejected, metrics.written, metrics.acknowledged, metrics.spilled) == (1, 9, 9, 0)
    assert store.stored_ids() == {f"e{n}" for n in range(10)} - {"e3"}
    assert '"event_id": "e3"' in caplog.text and "feedback_event_rejected" in caplog.text


def test_a_lost_postgres_connection_spills_then_reconnects(postgres_schema_dsn: str, spill: Path) -> None:
    import psycopg

    from majordome.feedback.postgres import PostgresEventStore

    with PostgresEventStore(postgres_schema_dsn) as store, EventWriter(store, spill, batch_size=10) as writer:
        for n in range(20):
            writer.submit(event(n))
        assert writer.flush_sync(timeout=10)
        session = store._conn.info.backend_pid  # the store's session, which the server now ends
        with psycopg.connect(postgres_schema_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (session,))
        for n in range(20, 40):
            writer.submit(event(n))
        assert writer.flush_sync(timeout=10)
        assert writer.metrics.spilled == 20  # the batch that met the dead connection
        eventually(lambda: writer.metrics.replayed == 20)
        assert {c.event_id for n in range(40) for c in store.calls(f"e{n}")} == {f"e{n}" for n in range(40)}
