"""Reordering a pool of retrieved chunks: a boost from performance signals, and MMR diversity.

Both work on the pool the store returned (the best ``max(4k, 20)`` chunks of the tenant by the
search mode's own score), so they reorder relevant chunks and never pull in an irrelevant one
because it sold well or because it differs from the rest.

- :func:`performance_signals`: one number in [0, 1] per chunk from its document's
  :class:`~majordome.knowledge.documents.Performance` (score, conversions, revenue), each on a log
  scale relative to the best of the pool, averaged over the values the chunk has (a chunk with
  none gets 0). Relative to the pool, so it needs no knowledge of a tenant's usual figures.
- :func:`boosted`: relevance × (1 + ``weight`` × signal), relevance being the store score over
  the pool's best score.
- :func:`mmr`: maximal marginal relevance (Carbonell & Goldstein, 1998): greedily the chunk that
  maximises ``(1 − diversity) × relevance − diversity × (its highest cosine similarity to a chunk
  already chosen)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["boosted", "mmr", "performance_signals", "relative"]

_FIELDS = ("score", "conversions", "revenue")


def relative(scores: Sequence[float]) -> list[float]:
    """Scores over the pool's best (negative ones clipped to 0): 1.0 for the best."""
    best = max(scores, default=0.0)
    if best <= 0:
        return [1.0 if s == best else 0.0 for s in scores]
    return [max(s, 0.0) / best for s in scores]


def performance_signals(payloads: Sequence[Mapping[str, Any]]) -> list[float]:
    """One signal in [0, 1] per payload (see the module's docstring)."""
    values: list[dict[str, float]] = []
    for payload in payloads:
        performance = payload.get("performance") or {}
        row = {}
        for name in _FIELDS:
            value = performance.get(name) if isinstance(performance, Mapping) else None
            if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
                row[name] = math.log1p(float(value))
        values.append(row)
    best = {name: max((row.get(name, 0.0) for row in values), default=0.0) for name in _FIELDS}
    signals = []
    for row in values:
        parts = [row[name] / best[name] if best[name] > 0 else 0.0 for name in row]
        signals.append(sum(parts) / len(parts) if parts else 0.0)
    return signals


def boosted(scores: Sequence[float], payloads: Sequence[Mapping[str, Any]], weight: float) -> list[float]:
    """Relevance (:func:`relative`) × (1 + ``weight`` × the performance signal)."""
    if weight < 0 or not math.isfinite(weight):
        raise ValueError(f"boost must be a finite number >= 0, got {weight!r}")
    signals = performance_signals(payloads)
    return [r * (1.0 + weight * s) for r, s in zip(relative(scores), signals, strict=True)]


def mmr(relevance: Sequence[float], vectors: Sequence[np.ndarray | None], k: int, diversity: float) -> list[int]:
    """The positions of ``k`` items chosen by maximal marginal relevance, in the order chosen.

    ``vectors`` are L2-normalised (cosine = dot product); an item without one is never penalised
    as redundant. ``diversity`` 0 is plain relevance order, 1 ignores relevance after the first.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity!r}")
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(relative(relevance), dtype=np.float64)
    dim = next((v.shape[0] for v in vectors if v is not None), 0)
    matrix = np.zeros((n, dim), dtype=np.float32)
    for i, vector in enumerate(vectors):
        if vector is not None:
            matrix[i] = vector
    redundancy = np.full(n, -np.inf) if dim else np.zeros(n)
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        value = (1.0 - diversity) * rel - diversity * penalty
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        if dim:
            redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return chosen
