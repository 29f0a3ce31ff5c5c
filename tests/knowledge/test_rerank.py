from __future__ import annotations

import math

import numpy as np
import pytest

from majordome.knowledge.rerank import boosted, mmr, performance_signals, relative


def _unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    result: np.ndarray = vector / np.linalg.norm(vector)
    return result


def test_relative_scales_by_the_best_and_clips_negatives() -> None:
    assert relative([2.0, 1.0, -0.5]) == [1.0, 0.5, 0.0]
    assert relative([]) == []
    assert relative([-1.0, -2.0]) == [1.0, 0.0]


def test_performance_signals_are_log_scaled_relative_to_the_pool() -> None:
    payloads = [
        {"performance": {"conversions": 99}},
        {"performance": {"conversions": 9, "revenue": 0.0}},
        {"performance": None},
        {},
    ]
    signals = performance_signals(payloads)
    assert signals[0] == pytest.approx(1.0)
    assert signals[1] == pytest.approx((math.log(10) / math.log(100) + 0.0) / 2)  # revenue 0 of a best 0 → 0
    assert signals[2:] == [0.0, 0.0]


def test_boost_reorders_but_zero_weight_keeps_relevance() -> None:
    scores = [1.0, 0.9]
    payloads = [{}, {"performance": {"conversions": 50, "score": 3.0}}]
    assert boosted(scores, payloads, 0.0) == pytest.approx([1.0, 0.9])
    lifted = boosted(scores, payloads, 0.5)
    assert lifted[1] == pytest.approx(0.9 * 1.5) and lifted[1] > lifted[0]
    with pytest.raises(ValueError, match="boost"):
        boosted(scores, payloads, -1.0)


def test_mmr_without_diversity_is_relevance_order() -> None:
    vectors = [_unit(1, 0), _unit(1, 0.01), _unit(0, 1)]
    assert mmr([0.9, 0.8, 0.1], vectors, 3, 0.0) == [0, 1, 2]


def test_mmr_skips_a_near_duplicate() -> None:
    vectors = [_unit(1, 0), _unit(1, 0.01), _unit(0.2, 1)]
    # the second is a near copy of the first: with diversity it loses its place to the third
    assert mmr([0.9, 0.85, 0.6], vectors, 2, 0.5) == [0, 2]
    assert mmr([0.9, 0.85, 0.6], vectors, 2, 0.1) == [0, 1]


def test_mmr_edge_cases() -> None:
    assert mmr([], [], 3, 0.5) == []
    assert mmr([0.5, 0.4], [None, None], 5, 0.5) == [0, 1]  # no vectors: nothing is redundant
    with pytest.raises(ValueError, match="diversity"):
        mmr([1.0], [None], 1, 1.5)
