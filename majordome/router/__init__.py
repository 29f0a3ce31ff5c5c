"""Routing: understand a request and choose the model that answers it, explainably."""

from majordome.router.decision import RequestFeatures, RoutingDecision
from majordome.router.seed import SEED_POLICY, seed_route

__all__ = ["SEED_POLICY", "RequestFeatures", "RoutingDecision", "seed_route"]
