"""Feedback that tunes the routing: the event store, budgets and the online learner.

- :class:`FeedbackLoop` (``Majordome(feedback=...)`` or ``feedback_store=``): decisions, calls and
  costs recorded off the request path (:class:`EventWriter`: a bounded queue, batches, a spill
  file when the store is down), feedback by trace id (``mj.feedback(trace_id, "rating", 5)``),
  rewards (:class:`RewardMapping`) and the learner (:class:`BanditQuality`) on top of the router.
- Stores: :class:`SQLiteEventStore` (one file, WAL; the default) and :class:`PostgresEventStore`
  (many workers); cost rows readable as the platform's cost table (``majordome_cost``).
- Budgets (``Majordome(budgets=...)`` or ``budget_daily_usd``/``redis_url``):
  :class:`InProcessBudgets` for one worker, :class:`RedisBudgets` shared by all.
"""

from majordome.feedback.budgets import (
    BudgetCaps,
    BudgetLedger,
    BudgetStatus,
    BudgetUnavailable,
    InProcessBudgets,
    RedisBudgets,
    Reservation,
)
from majordome.feedback.events import CallEvent, CostRow, DecisionEvent, FeedbackEvent
from majordome.feedback.learner import BanditQuality
from majordome.feedback.loop import FeedbackLoop, FeedbackResult, UnknownTrace, open_store
from majordome.feedback.postgres import PostgresEventStore
from majordome.feedback.reward import RewardMapping
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.store import EventStore, StatsRow, StoreUnavailable
from majordome.feedback.writer import EventWriter

__all__ = [
    "BanditQuality",
    "BudgetCaps",
    "BudgetLedger",
    "BudgetStatus",
    "BudgetUnavailable",
    "CallEvent",
    "CostRow",
    "DecisionEvent",
    "EventStore",
    "EventWriter",
    "FeedbackEvent",
    "FeedbackLoop",
    "FeedbackResult",
    "InProcessBudgets",
    "PostgresEventStore",
    "RedisBudgets",
    "Reservation",
    "RewardMapping",
    "SQLiteEventStore",
    "StatsRow",
    "StoreUnavailable",
    "UnknownTrace",
    "open_store",
]
