"""Routing: understand a request and choose the model that answers it, explainably.

:class:`Router` reads a request's features (hints, intent, language, modality, length), filters
the catalogue (capability, context window, tier, circuit breaker, deadline, cost limit), scores
the candidates with a :class:`QualityModel`, expected cost and latency, and returns a
:class:`RoutingDecision`.
"""

from majordome.router.decision import CandidateScore, RequestFeatures, RoutingDecision
from majordome.router.intents import INTENTS, IntentClassifier, IntentReport, LabelledUtterance
from majordome.router.language import LanguageDetector
from majordome.router.outcomes import Outcome, OutcomeTable, read_outcomes
from majordome.router.policy import Policy
from majordome.router.quality import KNNQuality, LinearQuality, PriorQuality, QualityInputs, QualityModel, load_quality
from majordome.router.router import Router, UsageStats, explain

__all__ = [
    "INTENTS",
    "CandidateScore",
    "IntentClassifier",
    "IntentReport",
    "KNNQuality",
    "LabelledUtterance",
    "LanguageDetector",
    "LinearQuality",
    "Outcome",
    "OutcomeTable",
    "Policy",
    "PriorQuality",
    "QualityInputs",
    "QualityModel",
    "RequestFeatures",
    "Router",
    "RoutingDecision",
    "UsageStats",
    "explain",
    "load_quality",
    "read_outcomes",
]
