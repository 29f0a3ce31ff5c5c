"""The event store in PostgreSQL (the platform's database), with psycopg 3.

One connection per store, guarded by a lock and reopened when it breaks (the writer's thread is
its only busy user); exports stream through a server-side cursor on a connection of their own.
Batches go in with ``executemany`` (pipelined by psycopg) and ``ON CONFLICT DO NOTHING``; dict
columns are JSONB. ``schema`` puts the tables in a schema of their own (created when missing).
Migrations run in one transaction under an advisory lock, so processes opening a new database
together migrate it once.

Messages never carry the DSN's password: the store is described by host, port, database and
user only, and the password is masked in the driver's messages too.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from majordome._errors import ConfigurationError
from majordome._logging import register_secret
from majordome.feedback.store import (
    Migration,
    SQLEventStore,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    check_schema_version,
)

__all__ = ["MIGRATIONS", "PostgresEventStore", "describe_dsn"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "decisions, calls and feedback",
        (
            """CREATE TABLE majordome_decisions (
                event_id TEXT PRIMARY KEY,
                created_at TIMESTAMPTZ NOT NULL,
                trace_id TEXT NOT NULL,
                tenant TEXT NOT NULL,
                job_type TEXT,
                intent TEXT,
                language TEXT,
                chosen TEXT NOT NULL,
                chain JSONB NOT NULL,
                policy TEXT NOT NULL,
                explored BOOLEAN NOT NULL,
                candidates JSONB NOT NULL,
                features JSONB NOT NULL,
                prompt TEXT
            )""",
            "CREATE INDEX majordome_decisions_trace ON majordome_decisions (trace_id)",
            "CREATE INDEX majordome_decisions_created ON majordome_decisions (created_at)",
            """CREATE TABLE majordome_calls (
                event_id TEXT PRIMARY KEY,
                created_at TIMESTAMPTZ NOT NULL,
                trace_id TEXT NOT NULL,
                tenant TEXT NOT NULL,
                job_type TEXT,
                intent TEXT,
                model TEXT NOT NULL,
                deployment TEXT,
                attempts INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                latency_s DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                error_class TEXT,
                served_by TEXT,
                substituted BOOLEAN NOT NULL
            )""",
            "CREATE INDEX majordome_calls_trace ON majordome_calls (trace_id)",
            "CREATE INDEX majordome_calls_created ON majordome_calls (created_at)",
            """CREATE TABLE majordome_feedback (
                event_id TEXT PRIMARY KEY,
                created_at TIMESTAMPTZ NOT NULL,
                trace_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                detail JSONB NOT NULL,
                reward DOUBLE PRECISION
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
                   jsonb_build_object('trace_id', trace_id, 'event_id', event_id, 'deployment', deployment,
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
                created_at TIMESTAMPTZ NOT NULL,
                note TEXT NOT NULL,
                state TEXT NOT NULL
            )""",
        ),
    ),
)

_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS majordome_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL,
    description TEXT NOT NULL
)"""

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigurationError("the PostgreSQL event store needs psycopg: pip install 'majordome[postgres]'") from exc
    return psycopg


def describe_dsn(dsn: str) -> str:
    """The DSN as ``user@host:port/dbname``: enough to know which database, never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a DSN psycopg cannot parse; say so without echoing it
        return "<unparseable DSN>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname') or ''}"


def _strip_nul(value: Any) -> Any:
    """``value`` with NUL characters (which PostgreSQL text and JSONB cannot hold) replaced."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


class PostgresEventStore(SQLEventStore):
    """The event store in the PostgreSQL database ``dsn`` (a URL or ``key=value`` string)."""

    placeholder = "%s"
    json_placeholder = "%s::jsonb"

    def __init__(self, dsn: str, *, schema: str | None = None, connect_timeout_s: float = 5.0) -> None:
        super().__init__()
        self._pg = _psycopg()
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(f"invalid PostgreSQL schema name {schema!r}: letters, digits and _ only")
        from psycopg.conninfo import conninfo_to_dict

        try:
            self._password = str(conninfo_to_dict(dsn).get("password") or "")
        except self._pg.Error:
            raise ConfigurationError("the PostgreSQL DSN of the event store cannot be parsed") from None
        self._dsn = dsn
        register_secret(self._password)
        self.schema = schema
        self.where = describe_dsn(dsn) + (f" (schema {schema})" if schema else "")
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Any = None
        with self._lock:
            self._migrate()

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.where!r})"

    # connections and errors

    def _mask(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _error(self, exc: Exception, doing: str) -> StoreError:
        message = self._mask(f"the event store {self.where} failed {doing}: {str(exc).strip()}")
        if isinstance(exc, self._pg.IntegrityError | self._pg.DataError):
            return StoreRejected(message)
        return StoreUnavailable(message)

    def _open(self, *, autocommit: bool) -> Any:
        try:
            conn = self._pg.connect(
                self._dsn,
                autocommit=autocommit,
                connect_timeout=max(1, round(self._connect_timeout_s)),
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
            if self.schema is not None:
                conn.execute(f'SET search_path TO "{self.schema}"')
                if not autocommit:
                    conn.commit()
        except self._pg.Error as exc:
            raise self._error(exc, "to connect") from exc
        return conn

    def _connection(self) -> Any:
        """The store's connection, (re)opened when missing or broken; call with the lock held."""
        if self._closed:
            raise StoreError(f"the event store {self.where} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._open(autocommit=True)
        return self._conn

    def _lock_key(self, conn: Any) -> int:
        schema = self.schema or conn.execute("SELECT current_schema()").fetchone()[0] or "public"
        digest = hashlib.sha256(f"majordome-event-store:{schema}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _migrate(self) -> None:
        conn = self._connection()
        known = MIGRATIONS[-1].version
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(conn),))
                if self.schema is not None:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(_MIGRATIONS_TABLE)
                applied = {v for (v,) in conn.execute("SELECT version FROM majordome_migrations").fetchall()}
                check_schema_version(max(applied, default=0), known, self.where)
                for migration in MIGRATIONS:
                    if migration.version in applied:
                        continue
                    for statement in migration.statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO majordome_migrations (version, applied_at, description) VALUES (%s, %s, %s)",
                        (migration.version, datetime.now(UTC), migration.description),
                    )
        except self._pg.Error as exc:
            raise self._error(exc, "its migrations") from exc

    # the dialect

    def schema_version(self) -> int:
        [(version,)] = self._fetch("SELECT MAX(version) FROM majordome_migrations")
        return int(version or 0)

    def _write_rows(self, batches: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> int:
        with self._lock:
            conn = self._connection()
            written = 0
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    for sql, rows in batches:
                        cursor.executemany(sql, rows)
                        written += max(cursor.rowcount, 0)
            except self._pg.Error as exc:
                raise self._error(exc, f"a batch of {sum(len(r) for _, r in batches)} events") from exc
            except (OverflowError, ValueError, TypeError) as exc:  # a value psycopg cannot adapt
                raise StoreRejected(f"the event store {self.where} cannot hold a value of the batch: {exc}") from exc
            return written

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            except self._pg.Error as exc:
                raise self._error(exc, "a query") from exc
            return rows

    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        if self._closed:
            raise StoreError(f"the event store {self.where} is closed")
        conn = self._open(autocommit=False)
        try:
            with conn.cursor(name="majordome_export") as cursor:
                cursor.itersize = 1000
                cursor.execute(sql, params)
                yield from cursor
        except self._pg.Error as exc:
            raise self._error(exc, "a query") from exc
        finally:
            conn.close()

    def _latency_percentiles(
        self, where: str, params: Sequence[Any]
    ) -> dict[tuple[str | None, str], tuple[float, float]]:
        sql = f"""
            SELECT c.intent, c.model,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY c.latency_s),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY c.latency_s)
            FROM majordome_calls c WHERE {where} GROUP BY c.intent, c.model"""
        return {(intent, model): (p50, p95) for intent, model, p50, p95 in self._fetch(sql, params)}

    def _encode_text(self, value: str) -> str:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value

    def _encode_json(self, value: Any) -> Any:
        text = super()._encode_json(value)
        return super()._encode_json(_strip_nul(value)) if "\\u0000" in text else text

    def _encode_time(self, value: datetime) -> datetime:
        return value

    def _decode_time(self, value: Any) -> datetime:
        moment: datetime = value.astimezone(UTC)
        return moment

    def _decode_json(self, value: Any) -> Any:
        return value

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._conn is not None:
                    self._conn.close()
