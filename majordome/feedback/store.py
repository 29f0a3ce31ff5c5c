"""The event store interface, its errors, and what the SQL stores share.

:class:`EventStore` is synchronous: the request path never calls it (the
:class:`~majordome.feedback.writer.EventWriter` does, from its own thread). Writes are idempotent
on ``event_id``: writing an event twice stores it once, so a batch may always be retried.

Both stores (:class:`~majordome.feedback.sqlite.SQLiteEventStore`,
:class:`~majordome.feedback.postgres.PostgresEventStore`) apply numbered migrations, recorded in
``majordome_migrations(version, applied_at, description)``, when they open; a database whose
schema is newer than this code is refused with a :class:`ConfigurationError` naming both versions.

Tables: ``majordome_decisions``, ``majordome_calls``, ``majordome_feedback`` (one row per event,
``event_id`` the primary key) and the view ``majordome_cost`` over the calls, with the columns of
the platform's cost table (:class:`~majordome.feedback.events.CostRow`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from majordome._errors import BadRequestError, ConfigurationError, MajordomeError
from majordome.feedback.events import CallEvent, CostRow, DecisionEvent, Event, FeedbackEvent, encode_json

if TYPE_CHECKING:
    from majordome.feedback.learner import LearnerVersion

__all__ = [
    "OUTCOME_COLUMNS",
    "EventStore",
    "Migration",
    "SQLEventStore",
    "StatsRow",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "check_schema_version",
]

# The long outcomes format (majordome.router.outcomes) as the store exports it.
OUTCOME_COLUMNS = (
    "prompt_id",
    "prompt",
    "model",
    "score",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "intent",
    "language",
)


class StoreError(MajordomeError):
    """The event store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used now (connection refused, database locked or not
    writable); the same operation may succeed later. Messages never hold a password."""


class StoreRejected(StoreError):
    """The store refused the data itself (a constraint or a value it cannot hold); retrying the
    same events will fail the same way."""


class Migration(NamedTuple):
    """One numbered schema change: its statements run in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


def check_schema_version(found: int, known: int, where: str) -> None:
    """Refuse a database migrated by a newer majordome."""
    if found > known:
        raise ConfigurationError(
            f"the event store {where} has schema version {found}, newer than this majordome's {known}: "
            "upgrade majordome (or open another store)"
        )


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Calls of one (intent, model) pair over a period.

    ``mean_reward`` averages the reward of the calls whose trace has rewarded feedback (each
    call counting its trace's mean reward once); ``rewarded`` is how many had some (None and 0
    when none had). Costs and latencies cover every call, failed ones included.
    """

    intent: str | None
    model: str
    calls: int
    failures: int
    rewarded: int
    mean_reward: float | None
    total_cost_usd: float
    mean_cost_usd: float
    latency_p50_s: float
    latency_p95_s: float

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


class EventStore(ABC):
    """Where decisions, calls and feedback are kept. Synchronous and thread-safe."""

    @abstractmethod
    def write(self, events: Sequence[Event]) -> int:
        """Store ``events`` in one transaction, ignoring those already stored (same ``event_id``);
        returns how many were new. Raises :class:`StoreUnavailable` or :class:`StoreRejected`."""

    @abstractmethod
    def decision(self, trace_id: str) -> DecisionEvent | None:
        """The trace's decision (the latest, should there be several), None when none."""

    @abstractmethod
    def calls(self, trace_id: str) -> list[CallEvent]:
        """The trace's calls, oldest first."""

    @abstractmethod
    def feedback(self, trace_id: str) -> list[FeedbackEvent]:
        """The trace's feedback, oldest first."""

    @abstractmethod
    def stats(self, since: datetime, until: datetime, tenant: str | None = None) -> list[StatsRow]:
        """Per (intent, model): the calls made in ``[since, until)``, for one tenant or all."""

    @abstractmethod
    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Rows of the long outcomes format (:data:`OUTCOME_COLUMNS`), one per successful call
        of a trace decided in ``[since, until)`` that has a recorded prompt and rewarded
        feedback: ``prompt_id`` is the trace id, ``score`` the trace's mean reward. Calls served
        by a stand-in (``substituted``) are left out: they say nothing of the slot's model."""

    @abstractmethod
    def cost_rows(self, since: datetime, until: datetime, tenant: str | None = None) -> list[CostRow]:
        """Rows of the ``majordome_cost`` view created in ``[since, until)``, oldest first."""

    @abstractmethod
    def schema_version(self) -> int:
        """The newest migration applied to the database."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- what the SQL stores share -----------------------------------------------------------------

_Kind = Literal["text", "int", "float", "bool", "json", "json_tuple", "time"]


class _Table(NamedTuple):
    name: str
    event: type[DecisionEvent] | type[CallEvent] | type[FeedbackEvent]
    columns: tuple[tuple[str, _Kind], ...]


_COMMON: tuple[tuple[str, _Kind], ...] = (("event_id", "text"), ("created_at", "time"), ("trace_id", "text"))

_TABLES: dict[str, _Table] = {
    "decision": _Table(
        "majordome_decisions",
        DecisionEvent,
        (
            *_COMMON,
            ("tenant", "text"),
            ("job_type", "text"),
            ("intent", "text"),
            ("language", "text"),
            ("chosen", "text"),
            ("chain", "json_tuple"),
            ("policy", "text"),
            ("explored", "bool"),
            ("candidates", "json_tuple"),
            ("features", "json"),
            ("prompt", "text"),
        ),
    ),
    "call": _Table(
        "majordome_calls",
        CallEvent,
        (
            *_COMMON,
            ("tenant", "text"),
            ("job_type", "text"),
            ("intent", "text"),
            ("model", "text"),
            ("deployment", "text"),
            ("attempts", "int"),
            ("input_tokens", "int"),
            ("output_tokens", "int"),
            ("cost_usd", "float"),
            ("latency_s", "float"),
            ("status", "text"),
            ("error_class", "text"),
            ("served_by", "text"),
            ("substituted", "bool"),
        ),
    ),
    "feedback": _Table(
        "majordome_feedback",
        FeedbackEvent,
        (*_COMMON, ("kind", "text"), ("value", "float"), ("detail", "json"), ("reward", "float")),
    ),
}


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of sorted values, linearly interpolated (as PostgreSQL's
    ``percentile_cont``)."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise BadRequestError(f"{name} {value.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return value


class SQLEventStore(EventStore):
    """The queries of the SQL stores, over a few dialect primitives."""

    placeholder: ClassVar[str]
    json_placeholder: ClassVar[str]

    def __init__(self) -> None:
        self._insert_sql = {kind: self._insert_statement(table) for kind, table in _TABLES.items()}
        self._encoders = {
            kind: tuple(self._encoder(column_kind) for _, column_kind in table.columns)
            for kind, table in _TABLES.items()
        }

    # dialect primitives

    @abstractmethod
    def _write_rows(self, batches: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> int:
        """Run each (statement, rows) with executemany in one transaction; rows newly inserted."""

    @abstractmethod
    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""

    @abstractmethod
    def _stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, fetched a page at a time (on a connection of its own)."""

    @abstractmethod
    def _encode_time(self, value: datetime) -> Any: ...

    @abstractmethod
    def _decode_time(self, value: Any) -> datetime: ...

    @abstractmethod
    def _decode_json(self, value: Any) -> Any: ...

    def _encode_text(self, value: str) -> str:
        return value

    def _encode_json(self, value: Any) -> Any:
        return encode_json(value)

    def _latency_percentiles(
        self, where: str, params: Sequence[Any]
    ) -> dict[tuple[str | None, str], tuple[float, float]]:
        """p50 and p95 of the latencies of the calls matching ``where``, per (intent, model),
        computed here from the sorted values (a dialect may do it in SQL)."""
        sql = f"SELECT c.intent, c.model, c.latency_s FROM majordome_calls c WHERE {where}"
        groups: dict[tuple[str | None, str], list[float]] = {}
        for intent, model, latency in self._stream(sql, params):
            groups.setdefault((intent, model), []).append(float(latency))
        return {key: (_percentile(sorted(v), 50), _percentile(sorted(v), 95)) for key, v in groups.items()}

    # rows

    def _insert_statement(self, table: _Table) -> str:
        names = ", ".join(name for name, _ in table.columns)
        marks = ", ".join(
            self.json_placeholder if kind.startswith("json") else self.placeholder for _, kind in table.columns
        )
        return f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT (event_id) DO NOTHING"

    def _encoder(self, kind: _Kind) -> Callable[[Any], Any]:
        if kind == "time":
            return self._encode_time
        if kind.startswith("json"):
            return self._encode_json
        if kind == "text":
            return lambda v: None if v is None else self._encode_text(v)
        if kind == "bool":
            return bool
        return lambda v: v

    def _row(self, event: Event) -> tuple[Any, ...]:
        table = _TABLES[event.type]
        return tuple(
            encode(getattr(event, name))
            for (name, _), encode in zip(table.columns, self._encoders[event.type], strict=True)
        )

    def _event(self, table: _Table, row: Sequence[Any]) -> Any:
        values: dict[str, Any] = {}
        for (name, kind), value in zip(table.columns, row, strict=True):
            if kind == "time":
                value = self._decode_time(value)
            elif kind == "json":
                value = self._decode_json(value)
            elif kind == "json_tuple":
                value = tuple(self._decode_json(value))
            elif kind == "bool":
                value = bool(value)
            values[name] = value
        return table.event(**values)

    # the interface

    def write(self, events: Sequence[Event]) -> int:
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for event in events:
            grouped.setdefault(event.type, []).append(self._row(event))
        if not grouped:
            return 0
        return self._write_rows([(self._insert_sql[kind], rows) for kind, rows in grouped.items()])

    def _select(self, kind: str, trace_id: str, order: str = "ASC") -> list[Any]:
        table = _TABLES[kind]
        names = ", ".join(name for name, _ in table.columns)
        p = self.placeholder
        sql = f"SELECT {names} FROM {table.name} WHERE trace_id = {p} ORDER BY created_at {order}, event_id {order}"
        return [self._event(table, row) for row in self._fetch(sql, (trace_id,))]

    def decision(self, trace_id: str) -> DecisionEvent | None:
        found: list[DecisionEvent] = self._select("decision", trace_id, "DESC")
        return found[0] if found else None

    def calls(self, trace_id: str) -> list[CallEvent]:
        found: list[CallEvent] = self._select("call", trace_id)
        return found

    def feedback(self, trace_id: str) -> list[FeedbackEvent]:
        found: list[FeedbackEvent] = self._select("feedback", trace_id)
        return found

    def _range(
        self,
        since: datetime | None,
        until: datetime | None,
        tenant: str | None = None,
        *,
        time_column: str = "c.created_at",
        tenant_column: str = "c.tenant",
    ) -> tuple[str, list[Any]]:
        p = self.placeholder
        clauses, params = ["1 = 1"], []
        if since is not None:
            clauses.append(f"{time_column} >= {p}")
            params.append(self._encode_time(_aware(since, "since")))
        if until is not None:
            clauses.append(f"{time_column} < {p}")
            params.append(self._encode_time(_aware(until, "until")))
        if tenant is not None:
            clauses.append(f"{tenant_column} = {p}")
            params.append(tenant)
        return " AND ".join(clauses), params

    def stats(self, since: datetime, until: datetime, tenant: str | None = None) -> list[StatsRow]:
        where, params = self._range(since, until, tenant)
        sql = f"""
            SELECT c.intent, c.model, COUNT(*),
                   SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),
                   COUNT(r.reward), AVG(r.reward), SUM(c.cost_usd)
            FROM majordome_calls c
            LEFT JOIN (
                SELECT trace_id, AVG(reward) AS reward FROM majordome_feedback
                WHERE reward IS NOT NULL GROUP BY trace_id
            ) r ON r.trace_id = c.trace_id
            WHERE {where}
            GROUP BY c.intent, c.model"""
        rows = self._fetch(sql, params)
        latencies = self._latency_percentiles(where, params)
        out = []
        for intent, model, calls, failures, rewarded, mean_reward, total_cost in rows:
            p50, p95 = latencies.get((intent, model), (math.nan, math.nan))
            out.append(
                StatsRow(
                    intent=intent,
                    model=model,
                    calls=int(calls),
                    failures=int(failures),
                    rewarded=int(rewarded),
                    mean_reward=None if mean_reward is None else float(mean_reward),
                    total_cost_usd=float(total_cost or 0.0),
                    mean_cost_usd=float(total_cost or 0.0) / int(calls),
                    latency_p50_s=float(p50),
                    latency_p95_s=float(p95),
                )
            )
        return sorted(out, key=lambda r: (r.intent or "", r.model))

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict[str, Any]]:
        where, params = self._range(since, until, time_column="d.created_at")
        sql = f"""
            SELECT d.trace_id, d.prompt, c.model, r.score, c.input_tokens, c.output_tokens, c.cost_usd,
                   d.intent, d.language
            FROM majordome_decisions d
            JOIN (
                SELECT trace_id, AVG(reward) AS score FROM majordome_feedback
                WHERE reward IS NOT NULL GROUP BY trace_id
            ) r ON r.trace_id = d.trace_id
            JOIN majordome_calls c ON c.trace_id = d.trace_id AND c.status = 'ok' AND NOT c.substituted
            WHERE d.prompt IS NOT NULL AND {where}
            ORDER BY d.created_at, d.trace_id, c.created_at"""
        for row in self._stream(sql, params):
            data = dict(zip(OUTCOME_COLUMNS, row, strict=True))
            data["score"] = float(data["score"])
            yield data

    # -- the online learner's shared state (majordome.feedback.learner.StateBackend) ----------

    def save_learner_state(self, version: int, state: str, note: str) -> bool:
        """Write learner state ``version``; False when that version exists (someone else saved)."""
        p = self.placeholder
        sql = (
            "INSERT INTO majordome_learner_state (version, created_at, note, state) "
            f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (version) DO NOTHING"
        )
        row = (int(version), self._encode_time(datetime.now(UTC)), note, state)
        return self._write_rows([(sql, [row])]) == 1

    def load_learner_state(self, version: int | None = None) -> LearnerVersion | None:
        """Learner state ``version``, or the newest; None when there is none."""
        columns = "SELECT version, created_at, note, state FROM majordome_learner_state"
        if version is None:
            rows = self._fetch(f"{columns} ORDER BY version DESC LIMIT 1")
        else:
            rows = self._fetch(f"{columns} WHERE version = {self.placeholder}", (int(version),))
        if not rows:
            return None
        from majordome.feedback.learner import LearnerVersion

        number, created, note, state = rows[0]
        return LearnerVersion(int(number), self._decode_time(created).timestamp(), str(note), str(state))

    def learner_versions(self) -> list[tuple[int, datetime, str]]:
        """``(version, created_at, note)`` of every saved learner state, oldest first."""
        rows = self._fetch("SELECT version, created_at, note FROM majordome_learner_state ORDER BY version")
        return [(int(v), self._decode_time(c), str(n)) for v, c, n in rows]

    def cost_rows(self, since: datetime, until: datetime, tenant: str | None = None) -> list[CostRow]:
        where, params = self._range(since, until, tenant, time_column="created_at", tenant_column="creator_id")
        sql = f"SELECT {', '.join(CostRow.COLUMNS)} FROM majordome_cost WHERE {where} ORDER BY created_at"
        out = []
        for row in self._fetch(sql, params):
            data = dict(zip(CostRow.COLUMNS, row, strict=True))
            data["metadata"] = self._decode_json(data["metadata"])
            data["created_at"] = self._decode_time(data["created_at"])
            out.append(CostRow(**data))
        return out
