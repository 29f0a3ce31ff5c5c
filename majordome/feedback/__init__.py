"""Feedback: the event store, budgets and the online learner."""
