"""The feedback loop: what the Majordome records, how feedback comes back, and what it changes.

One :class:`FeedbackLoop` per Majordome holds the event store and its writer, the online learner
and the reward mapping (the budget ledger is the Majordome's own). On the request path it only
does in-memory work: the exploration draw, the learner's context, and :meth:`EventWriter.submit`
(an append to a queue). Everything that touches the store runs in the
writer's thread, or in a worker thread for :meth:`FeedbackLoop.record_feedback`.

    loop = FeedbackLoop.open("feedback.db")
    mj = Majordome(feedback=loop, budgets=InProcessBudgets(default=BudgetCaps(daily_usd=5)))
    answer = await mj.ask({...})
    await mj.afeedback(answer.trace_id, "rating", 5)
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from majordome._errors import BadRequestError, ConfigurationError
from majordome._logging import get_logger
from majordome.feedback.budgets import BudgetStatus
from majordome.feedback.events import CallEvent, DecisionEvent, FeedbackEvent
from majordome.feedback.learner import BanditQuality, StateBackend
from majordome.feedback.reward import KINDS, RewardMapping
from majordome.feedback.store import EventStore
from majordome.feedback.writer import EventWriter

if TYPE_CHECKING:
    from majordome.router.router import Router

__all__ = ["FeedbackLoop", "FeedbackResult", "UnknownTrace", "open_store"]

_log = get_logger("majordome.feedback")


class UnknownTrace(BadRequestError):
    """Feedback for a trace id this store never recorded."""


@dataclass(frozen=True)
class FeedbackResult:
    """What one piece of feedback did: its reward, and whether it was new (not a repeat)."""

    trace_id: str
    kind: str
    reward: float
    stored: bool
    learned: bool


@dataclass
class _Recent:
    """What feedback needs of a recent decision, without a store read."""

    tenant: str
    chosen: str
    context: list[float] | None
    base_quality: float | None
    answer: str | None = None


def open_store(where: str | Path) -> EventStore:
    """An event store: a PostgreSQL DSN (``postgresql://…``) or an SQLite file path."""
    text = str(where)
    if text.startswith(("postgresql://", "postgres://")):
        from majordome.feedback.postgres import PostgresEventStore

        return PostgresEventStore(text)
    from majordome.feedback.sqlite import SQLiteEventStore

    return SQLiteEventStore(Path(text.removeprefix("sqlite:///")).expanduser())


def budget_pressure(status: BudgetStatus | None) -> float:
    """How much more cost weighs as the budget runs low: 1 with half the tightest cap or more
    left, then the inverse of the share left over one half (2 at a quarter left), at most 10."""
    share = status.remaining_share if status is not None else None
    if share is None or share >= 0.5:
        return 1.0
    return min(10.0, 0.5 / max(share, 0.05))


class FeedbackLoop:
    """The store, budgets, learner and rewards of one Majordome (see the module's docstring).

    ``explore_share``: the largest share of requests decided by a posterior sample (Thompson)
    rather than the posterior mean; never for ``sensitive_intents``, never when the tenant has
    less than ``explore_min_budget_share`` of its tightest cap left. ``record_prompts``: keep the
    prompt (and the answer, for edit feedback) in the store, which the outcome export needs.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        spill_path: str | Path | None = None,
        learner: bool = True,
        rewards: RewardMapping | None = None,
        explore_share: float = 0.25,
        sensitive_intents: Iterable[str] = (),
        explore_min_budget_share: float = 0.2,
        record_prompts: bool = True,
        sync_every_s: float = 30.0,
        recent: int = 10_000,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= explore_share <= 1.0:
            raise ConfigurationError(f"explore_share must be between 0 and 1, got {explore_share}")
        self.store = store
        spill = Path(spill_path) if spill_path is not None else _default_spill(store)
        self.writer = EventWriter(store, spill)
        self.learn = learner
        self.learner: BanditQuality | None = None
        self.rewards = rewards or RewardMapping()
        self.explore_share = explore_share
        self.sensitive_intents = frozenset(sensitive_intents)
        self.explore_min_budget_share = explore_min_budget_share
        self.record_prompts = record_prompts
        self.sync_every_s = sync_every_s
        self._recent: OrderedDict[str, _Recent] = OrderedDict()
        self._recent_size = recent
        self._seen_feedback: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._last_sync = 0.0
        self._sync_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, where: str | Path, **options: Any) -> FeedbackLoop:
        """A loop on the store at ``where`` (see :func:`open_store`)."""
        return cls(open_store(where), **options)

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, router: Router, models: list[str]) -> None:
        """Put the learner on top of ``router``'s quality model and load the newest shared state."""
        if not self.learn:
            return
        base = router.quality.base if isinstance(router.quality, BanditQuality) else router.quality
        self.learner = BanditQuality(base, models)
        router.set_quality(self.learner)
        backend = self._backend()
        if backend is not None:
            latest = backend.load_learner_state()
            if latest is not None:
                self.learner.load(latest)

    def _backend(self) -> StateBackend | None:
        return self.store if hasattr(self.store, "load_learner_state") else None  # type: ignore[return-value]

    # -- the request path ----------------------------------------------------------------------

    def may_explore(self, intent: str, status: BudgetStatus | None) -> bool:
        if self.learner is None or intent in self.sensitive_intents or self.explore_share <= 0:
            return False
        share = status.remaining_share if status is not None else None
        if share is not None and share < self.explore_min_budget_share:
            return False
        return self._rng.random() < self.explore_share

    def remember(
        self,
        trace_id: str,
        tenant: str,
        chosen: str,
        context: list[float] | None,
        base_quality: float | None,
    ) -> None:
        with self._lock:
            self._recent[trace_id] = _Recent(tenant, chosen, context, base_quality)
            while len(self._recent) > self._recent_size:
                self._recent.popitem(last=False)

    def recent(self, trace_id: str) -> _Recent | None:
        with self._lock:
            return self._recent.get(trace_id)

    def record(self, decision: DecisionEvent, call: CallEvent, answer: str | None) -> None:
        """Queue the decision and the call (never blocks on I/O)."""
        with self._lock:
            recent = self._recent.get(decision.trace_id)
            if recent is not None:
                recent.chosen = call.model  # a fallback may have answered
                recent.answer = answer
                if call.substituted:  # the local stand-in answered: feedback says nothing of the slot's model
                    recent.context = None
        self.writer.submit(decision)
        self.writer.submit(call)

    # -- feedback ------------------------------------------------------------------------------

    def record_feedback(
        self,
        trace_id: str,
        kind: str,
        value: float | bool | str,
        *,
        draft: str | None = None,
        idempotency_key: str | None = None,
    ) -> FeedbackResult:
        """Store one piece of feedback and teach the learner (blocking: call it off the loop)."""
        if kind not in KINDS:
            raise BadRequestError(f"unknown feedback kind {kind!r}; kinds: {', '.join(KINDS)}")
        if not isinstance(trace_id, str) or not trace_id.strip():
            raise BadRequestError("feedback needs the trace id of the answer it is about")
        recent = self._lookup(trace_id)
        answer = draft if draft is not None else recent.answer
        reward = self.rewards.reward(kind, value, draft=answer)
        key = idempotency_key or _feedback_key(trace_id, kind, value)
        event_id = str(_uuid_from(key))
        with self._lock:
            repeated = event_id in self._seen_feedback
        if not repeated:
            repeated = any(f.event_id == event_id for f in self.store.feedback(trace_id))
        if repeated:
            return FeedbackResult(trace_id, kind, reward, stored=False, learned=False)
        number, detail = _stored_value(kind, value, reward)
        self.writer.submit(
            FeedbackEvent(trace_id=trace_id, kind=kind, value=number, detail=detail, reward=reward, event_id=event_id)
        )
        with self._lock:
            self._seen_feedback[event_id] = None
            while len(self._seen_feedback) > self._recent_size:
                self._seen_feedback.popitem(last=False)
        learned = False
        if self.learner is not None and recent.context is not None and recent.base_quality is not None:
            self.learner.update(
                recent.chosen, recent.context, reward, recent.base_quality, weight=self.rewards.weight(kind)
            )
            learned = True
            self.maybe_sync()
        return FeedbackResult(trace_id, kind, reward, stored=True, learned=learned)

    def _lookup(self, trace_id: str) -> _Recent:
        with self._lock:
            recent = self._recent.get(trace_id)
        if recent is not None:
            return recent
        decision = self.store.decision(trace_id)
        if decision is None:
            self.writer.flush_sync(timeout=5.0)  # it may still be in the writer's queue
            decision = self.store.decision(trace_id)
        if decision is None:
            raise UnknownTrace(f"no decision was recorded for trace {trace_id!r}")
        calls = [c for c in self.store.calls(trace_id) if c.status == "ok"]
        answered = [c.model for c in calls]
        context = None if any(c.substituted for c in calls) else decision.features.get("context")
        base = decision.features.get("base_quality")
        return _Recent(
            decision.tenant,
            answered[-1] if answered else decision.chosen,
            [float(v) for v in context] if isinstance(context, list) else None,
            float(base) if isinstance(base, int | float) else None,
            decision.features.get("answer") if isinstance(decision.features.get("answer"), str) else None,
        )

    def sync_due(self) -> bool:
        """Whether this worker's learner should sync with the others now (a cheap check)."""
        return self.learner is not None and time.monotonic() - self._last_sync >= self.sync_every_s

    def maybe_sync(self, *, force: bool = False) -> int | None:
        """Share the learner's new rewards with the other workers (every ``sync_every_s``)."""
        backend = self._backend()
        if self.learner is None or backend is None:
            return None
        now = time.monotonic()
        if not force and now - self._last_sync < self.sync_every_s:
            return None
        if not self._sync_lock.acquire(blocking=force):
            return None
        try:
            self._last_sync = now
            return self.learner.sync(backend)
        finally:
            self._sync_lock.release()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the events, share the learner's last rewards, close the store (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.writer.close_sync(timeout=30.0)
            if self.learner is not None:
                try:
                    self.maybe_sync(force=True)
                except Exception as exc:  # noqa: BLE001 - the events are safe; say why the state is not
                    _log.warning("feedback.learner_sync_failed", error=type(exc).__name__, detail=str(exc))
        finally:
            self.store.close()


def _default_spill(store: EventStore) -> Path:
    from majordome.knowledge.embeddings import cache_dir

    name = hashlib.sha256(repr(store).encode()).hexdigest()[:12]
    return cache_dir() / "feedback" / f"spill-{name}.jsonl"


def _feedback_key(trace_id: str, kind: str, value: object) -> str:
    return f"{trace_id}\x1f{kind}\x1f{value!r}"


def _uuid_from(key: str) -> Any:
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"majordome:feedback:{key}")


def _stored_value(kind: str, value: float | bool | str, reward: float) -> tuple[float, dict[str, Any]]:
    """The number the store keeps for a signal, and its detail."""
    if kind == "edit":
        return reward, {"sent_chars": len(str(value))}
    if isinstance(value, bool):
        return (1.0 if value else 0.0), {}
    if kind in ("thumbs", "conversion"):
        return (1.0 if float(value) == 1 else 0.0), {}
    number = float(value)
    if not math.isfinite(number):
        raise BadRequestError(f"{kind} must be finite, got {value!r}")
    return number, {}


def caps_from_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """Per-tenant caps from a config mapping ``{tenant: {daily_usd, monthly_usd}}``."""
    from majordome.feedback.budgets import BudgetCaps

    out: dict[str, Any] = {}
    for tenant, caps in data.items():
        if not isinstance(caps, Mapping):
            raise ConfigurationError(f"budget caps of {tenant!r} must be a table with daily_usd and/or monthly_usd")
        unknown = set(caps) - {"daily_usd", "monthly_usd"}
        if unknown:
            raise ConfigurationError(f"budget caps of {tenant!r}: unknown keys {sorted(unknown)}")
        out[str(tenant)] = BudgetCaps(daily_usd=caps.get("daily_usd"), monthly_usd=caps.get("monthly_usd"))
    return out
