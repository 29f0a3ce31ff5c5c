"""The event store in one SQLite file: the default, no server needed.

WAL mode (readers never block the writer), ``synchronous=NORMAL`` (a committed batch survives
the process being killed; the last batches before a power cut may not) and a busy timeout, so
that several processes can open the same file: each write takes the write lock with
``BEGIN IMMEDIATE`` and waits its turn. Migrations run under the same lock, so processes opening
a new file together migrate it once.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from majordome.feedback.store import (
    Migration,
    SQLEventStore,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    check_schema_version,
)

__all__ = ["MIGRATIONS", "SQLiteEventStore"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "decisions, calls and feedback",
        (
            """CREATE TABLE majordome_decisions (
                event_id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                tenant TEXT NOT NULL,
                job_type TEXT,
                intent TEXT,
                language TEXT,
                chosen TEXT NOT NULL,
                chain TEXT NOT NULL,
                policy TEXT NOT NULL,
                explored INTEGER NOT NULL,
                candidates TEXT NOT NULL,
                features TEXT NOT NULL,
                prompt TEXT
            )""",
            "CREATE INDEX majordome_decisions_trace ON majordome_decisions (trace_id)",
            "CREATE INDEX majordome_decisions_created ON majordome_decisions (created_at)",
            """CREATE TABLE majordome_calls (
                event_id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                tenant TEXT NOT NULL,
                job_type TEXT,
                intent TEXT,
                model TEXT NOT NULL,
                deployment TEXT,
                attempts INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                latency_s REAL NOT NULL,
                status TEXT NOT NULL,
                error_class TEXT,
                served_by TEXT,
                substituted INTEGER NOT NULL
            )""",
            "CREATE INDEX majordome_calls_trace ON majordome_calls (trace_id)",
            "CREATE INDEX majordome_calls_created ON majordome_calls (created_at)",
            """CREATE TABLE majordome_feedback (
                event_id TEXT PRIMARY KEY,
                created_at TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                value REAL NOT NULL,
                detail TEXT NOT NULL,
                reward REAL
            )""",
            "CREATE INDEX majordome_feedback_trace ON majordome_feedback (trace_id)",
        ),
    ),
    Migration(
        2,
        "majordome_cost: the calls as the platform's cost table (AzureAICost)",
        (
            """CREATE VIEW majordome_cost AS
            SELECT tenant AS creator_id, model, job_type, input_tokens, output_tokens,
                   input_tokens + output_tokens AS total_tokens, cost_usd,
                   json_object('trace_id', trace_id, 'event_id', event_id, 'deployment', deployment,
                               'attempts', attempts, 'latency_s', latency_s, 'served_by', served_by,
                               'status', status) AS metadata,
                   created_at
            FROM majordome_calls""",
        ),
    ),
    Migration(
        3,
        "majordome_learner_state: versions of the online learner's shared state",
        (
            """CREATE TABLE majordome_learner_state (
                version INTEGER PRIMARY KEY,
                created_at TEXT NOT NULL,
                note TEXT NOT NULL,
                state TEXT NOT NULL
            )""",
        ),
    ),
)

_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS majordome_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL,
    description TEXT NOT NULL
)"""


# Errors about the data (or the statement), not the database: retrying the batch will not help.
_REFUSED = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def _iso(value: datetime) -> str:
    # One fixed-width format, so that text order is time order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteEventStore(SQLEventStore):
    """The event store in the SQLite file ``path`` (created with its folder when missing)."""

    placeholder = "?"
    json_placeholder = "?"

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteEventStore({str(self.path)!r})"

    def _connect(self, *, read_only: bool = False) -> sqlite3.Connection:
        try:
            if read_only:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=self._busy_timeout_s,
                    isolation_level=None,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
                )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            if not read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the event store {self.path}: {exc}") from exc
        return conn

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        if isinstance(exc, _REFUSED):
            return StoreRejected(f"the event store {self.path} refused {doing}: {exc}")
        return StoreUnavailable(f"the event store {self.path} failed {doing}: {exc}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the event store {self.path} is closed")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the transaction may be gone with the error
                self._conn.execute("ROLLBACK")

    def _migrate(self) -> None:
        known = MIGRATIONS[-1].version
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(_MIGRATIONS_TABLE)
                applied = {v for (v,) in self._conn.execute("SELECT version FROM majordome_migrations")}
                check_schema_version(max(applied, default=0), known, str(self.path))
                for migration in MIGRATIONS:
                    if migration.version in applied:
                        continue
                    for statement in migration.statements:
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO majordome_migrations (version, applied_at, description) VALUES (?, ?, ?)",
                        (migration.version, _iso(datetime.now(UTC)), migration.description),
                    )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(exc, "its migrations") from exc
            except BaseException:
                self._rollback()
                raise

    def schema_version(self) -> int:
        [(version,)] = self._fetch("SELECT MAX(version) FROM majordome_migrations")
        return int(version or 0)

    def _write_rows(self, batches: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> int:
        with self._lock:
            self._check_open()
            conn = self._conn
            before = conn.total_changes
            try:
                conn.execute("BEGIN IMMEDIATE")
                for sql, rows in batches:
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(exc, f"a batch of {sum(len(r) for _, r in batches)} events") from exc
            except (OverflowError, ValueError, TypeError) as exc:  # a value SQLite cannot bind
                self._rollback()
                raise StoreRejected(f"the event store {self.path} cannot hold a value of the batch: {exc}") from exc
            return conn.total_changes - before

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            self._check_open()
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "a query") from exc

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        self._check_open()
        conn = self._connect(read_only=True)
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(1000):
                yield from rows
        except sqlite3.Error as exc:
            raise self._error(exc, "a query") from exc
        finally:
            conn.close()

    def _encode_time(self, value: datetime) -> str:
        return _iso(value)

    def _decode_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def _decode_json(self, value: Any) -> Any:
        return json.loads(value)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
