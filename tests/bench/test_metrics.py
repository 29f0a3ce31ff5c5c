"""The routing metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from majordome.bench.metrics import (
    Point,
    SharePoint,
    aiq,
    apgr,
    bootstrap_ci,
    bootstrap_indices_ci,
    cpt,
    cumulative_regret,
    frontier,
    pgr,
    quality_at_cost_share,
    sweep,
    threshold_curve,
)

# ----------------------------------------------------------------------------- frontier


def test_frontier_of_two_increasing_points_is_both_sorted_by_cost() -> None:
    assert frontier([(2.0, 0.8), (1.0, 0.5)]) == [Point(1.0, 0.5), Point(2.0, 0.8)]


def test_frontier_drops_a_dearer_point_that_is_worse() -> None:
    assert frontier([(1.0, 0.8), (2.0, 0.5)]) == [Point(1.0, 0.8)]


def test_frontier_drops_a_middle_point_under_the_line() -> None:
    # The line from (0, 0) to (2, 1) is at 0.5 for cost 1: mixing the two ends beats 0.4.
    assert frontier([(0.0, 0.0), (1.0, 0.4), (2.0, 1.0)]) == [Point(0.0, 0.0), Point(2.0, 1.0)]


def test_frontier_drops_a_middle_point_dominated_by_a_cheaper_one() -> None:
    assert frontier([(0.0, 0.5), (1.0, 0.4), (2.0, 1.0)]) == [Point(0.0, 0.5), Point(2.0, 1.0)]


def test_frontier_keeps_a_middle_point_above_the_line_and_drops_one_on_it() -> None:
    assert frontier([(0.0, 0.0), (1.0, 0.8), (2.0, 1.0)]) == [Point(0.0, 0.0), Point(1.0, 0.8), Point(2.0, 1.0)]
    assert frontier([(0.0, 0.0), (1.0, 0.5), (2.0, 1.0)]) == [Point(0.0, 0.0), Point(2.0, 1.0)]


def test_frontier_keeps_the_best_of_equally_cheap_points_and_stops_at_the_best_quality() -> None:
    points = [(1.0, 0.3), (1.0, 0.6), (2.0, 0.7), (3.0, 0.7), (4.0, 0.65)]
    assert frontier(points) == [Point(1.0, 0.6), Point(2.0, 0.7)]


def test_frontier_of_nothing_is_empty_and_a_nan_point_is_refused() -> None:
    assert frontier([]) == []
    with pytest.raises(ValueError, match="finite"):
        frontier([(1.0, math.nan)])


# ----------------------------------------------------------------------------- AIQ


def test_aiq_of_a_flat_line_is_its_quality_also_past_its_dearest_point() -> None:
    flat = [(0.0, 0.7), (1.0, 0.7)]
    assert aiq(flat, 0.0, 1.0) == pytest.approx(0.7)
    assert aiq(flat, 0.0, 3.0) == pytest.approx(0.7)  # extended flat to the right


def test_aiq_of_a_straight_line_is_the_mean_of_its_ends() -> None:
    assert aiq([(0.0, 0.2), (1.0, 0.8)], 0.0, 1.0) == pytest.approx(0.5)


def test_aiq_integrates_the_hull_not_the_raw_points() -> None:
    # Raw points would give (0 + 0.4)/2 * 1 + (0.4 + 1)/2 * 1 = 0.9 over a width 2: 0.45.
    assert aiq([(0.0, 0.0), (1.0, 0.4), (2.0, 1.0)], 0.0, 2.0) == pytest.approx(0.5)


def test_aiq_gives_no_credit_below_the_cheapest_point() -> None:
    # One point at cost 0.5: zero on [0, 0.5), 0.8 on [0.5, 1] -> 0.4.
    assert aiq([(0.5, 0.8)], 0.0, 1.0) == pytest.approx(0.4)
    assert aiq([(2.0, 0.8)], 0.0, 1.0) == 0.0


def test_aiq_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="cost_min < cost_max"):
        aiq([(0.0, 1.0)], 1.0, 1.0)


# ----------------------------------------------------------------------------- quality at cost share


def test_quality_at_cost_share_interpolates_on_the_frontier() -> None:
    router = [(0.2, 0.6), (1.0, 0.9), (0.5, 0.5)]  # (0.5, 0.5) is under the hull
    # At cost 0.6: 0.6 + (0.6 - 0.2) / 0.8 * 0.3 = 0.75, against a best model of quality 0.9.
    assert quality_at_cost_share(router, 1.0, 0.9, 0.6) == pytest.approx(0.75 / 0.9)
    assert quality_at_cost_share(router, 1.0, 0.9, 2.0) == pytest.approx(1.0)  # flat to the right
    assert math.isnan(quality_at_cost_share(router, 1.0, 0.9, 0.1))  # cheaper than the router can go


# ----------------------------------------------------------------------------- PGR, APGR, CPT

Q_WEAK, Q_STRONG = 0.25, 0.75


def test_pgr_maps_weak_to_zero_and_strong_to_one() -> None:
    assert pgr(0.25, Q_WEAK, Q_STRONG) == 0.0
    assert pgr(0.5, Q_WEAK, Q_STRONG) == 0.5
    np.testing.assert_allclose(pgr(np.array([0.25, 0.75, 1.0]), Q_WEAK, Q_STRONG), [0.0, 1.0, 1.5])
    with pytest.raises(ValueError, match="different"):
        pgr(0.5, 0.5, 0.5)


def oracle_example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four prompts. Weak scores 1, 0, 0, 0 (mean 0.25); strong 1, 1, 1, 0 (mean 0.75).
    Only prompts 1 and 2 gain from the strong model, and the router ranks them first."""
    weak = np.array([1.0, 0.0, 0.0, 0.0])
    strong = np.array([1.0, 1.0, 1.0, 0.0])
    p_strong_better = np.array([0.2, 0.9, 0.8, 0.1])
    return p_strong_better, weak, strong


def test_threshold_curve_of_the_oracle() -> None:
    p, weak, strong = oracle_example()
    curve = threshold_curve(p, weak, strong, [1.5, 0.9, 0.8, 0.2, 0.0])
    # Thresholds are inclusive: p >= alpha goes to the strong model.
    assert curve == [
        SharePoint(0.0, 0.25),
        SharePoint(0.25, 0.5),
        SharePoint(0.5, 0.75),
        SharePoint(0.75, 0.75),
        SharePoint(1.0, 0.75),
    ]


def test_apgr_of_the_oracle_router_by_hand() -> None:
    p, weak, strong = oracle_example()
    share, quality = np.array(threshold_curve(p, weak, strong, [1.5, 0.9, 0.8, 0.2, 0.0])).T
    # PGR 0, 0.5, 1, 1, 1 every 0.25: trapezoids 0.25 * (0.25 + 0.75 + 1 + 1) = 0.75.
    assert apgr(share, quality, Q_WEAK, Q_STRONG) == pytest.approx(0.75)
    # The order of the points does not matter.
    assert apgr(share[::-1], quality[::-1], Q_WEAK, Q_STRONG) == pytest.approx(0.75)


def test_apgr_of_random_routing_is_one_half_exactly_on_its_expected_curve() -> None:
    # Random routing's expected quality at share s is (1 - s) q_weak + s q_strong: PGR(s) = s.
    share = np.linspace(0.0, 1.0, 11)
    quality = (1 - share) * Q_WEAK + share * Q_STRONG
    assert apgr(share, quality, Q_WEAK, Q_STRONG) == pytest.approx(0.5)
    # With no measured point at all, the endpoints alone give the same line.
    assert apgr([], [], Q_WEAK, Q_STRONG) == pytest.approx(0.5)


def test_apgr_of_simulated_random_routers_averages_one_half() -> None:
    values = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        weak = (rng.random(2000) < 0.4).astype(float)
        strong = (rng.random(2000) < 0.8).astype(float)
        p = rng.random(2000)  # a "prediction" that knows nothing
        share, quality = np.array(threshold_curve(p, weak, strong, np.linspace(1.0, 0.0, 21))).T
        values.append(apgr(share, quality, weak.mean(), strong.mean()))
    assert np.mean(values) == pytest.approx(0.5, abs=0.02)


def test_apgr_adds_the_missing_endpoints() -> None:
    # One point at share 0.5 with PGR 0.8: 0.5 * (0 + 0.8) / 2 + 0.5 * (0.8 + 1) / 2 = 0.65.
    quality = Q_WEAK + 0.8 * (Q_STRONG - Q_WEAK)
    assert apgr([0.5], [quality], Q_WEAK, Q_STRONG) == pytest.approx(0.65)


def test_cpt_of_a_linear_curve_is_the_target() -> None:
    assert cpt([0.0, 1.0], [Q_WEAK, Q_STRONG], Q_WEAK, Q_STRONG, 0.5) == pytest.approx(0.5)
    assert cpt([], [], Q_WEAK, Q_STRONG, 0.8) == pytest.approx(0.8)


def test_cpt_of_the_oracle_interpolates_between_measured_points() -> None:
    p, weak, strong = oracle_example()
    share, quality = np.array(threshold_curve(p, weak, strong, [1.5, 0.9, 0.8, 0.2, 0.0])).T
    assert cpt(share, quality, Q_WEAK, Q_STRONG, 0.5) == pytest.approx(0.25)
    assert cpt(share, quality, Q_WEAK, Q_STRONG, 0.75) == pytest.approx(0.375)
    assert cpt(share, quality, Q_WEAK, Q_STRONG, 0.0) == 0.0


def test_cpt_is_nan_when_the_target_is_never_reached() -> None:
    assert math.isnan(cpt([0.0, 1.0], [Q_WEAK, Q_STRONG], Q_WEAK, Q_STRONG, 1.2))
    # A measured all-strong point below the target (PGR 0.4) is not replaced by the ideal one.
    low = Q_WEAK + 0.4 * (Q_STRONG - Q_WEAK)
    assert math.isnan(cpt([0.0, 1.0], [Q_WEAK, low], Q_WEAK, Q_STRONG, 0.5))


def test_threshold_curve_refuses_missing_outcomes() -> None:
    with pytest.raises(ValueError, match="finite"):
        threshold_curve([0.5, 0.5], [1.0, math.nan], [1.0, 1.0], [0.5])


# ----------------------------------------------------------------------------- sweep

QUALITY = np.array([[0.2, 0.9], [0.8, 0.9], [0.5, 0.4]])
COST = np.array([[1.0, 10.0], [1.0, 10.0], [1.0, 10.0]])


def test_sweep_with_perfect_predictions_by_hand() -> None:
    points = sweep(QUALITY, COST, QUALITY, COST, [0.0, 0.05, 1.0])
    # lambda 0: best quality per prompt -> models 1, 1, 0: cost (10 + 10 + 1)/3, quality (0.9 + 0.9 + 0.5)/3.
    # lambda 0.05: scores (0.15 | 0.4), (0.75 | 0.4), (0.45 | -0.1) -> models 1, 0, 0.
    # lambda 1: the cheap model everywhere.
    expected = [(7.0, 2.3 / 3), (4.0, 2.2 / 3), (1.0, 0.5)]
    for point, (cost, quality) in zip(points, expected, strict=True):
        assert point.cost == pytest.approx(cost)
        assert point.quality == pytest.approx(quality)


def test_sweep_breaks_ties_to_the_cheaper_model_and_takes_one_cost_per_model() -> None:
    predicted = np.full((3, 2), 0.5)  # no preference at all
    [point] = sweep(QUALITY, COST, predicted, np.array([1.0, 10.0]), [0.0])
    assert (point.cost, point.quality) == (1.0, pytest.approx(0.5))
    # Same with the dear model listed first.
    [point] = sweep(QUALITY[:, ::-1], COST[:, ::-1], predicted, np.array([10.0, 1.0]), [0.0])
    assert (point.cost, point.quality) == (1.0, pytest.approx(0.5))


def test_sweep_leaves_out_a_model_with_no_outcome_for_a_prompt() -> None:
    quality = QUALITY.copy()
    quality[0, 1] = math.nan  # the strong model was not run on prompt 0
    [point] = sweep(quality, COST, QUALITY, COST, [0.0])
    # Prompt 0 can only go to model 0: models 0, 1, 0.
    assert point.cost == pytest.approx(4.0)
    assert point.quality == pytest.approx((0.2 + 0.9 + 0.5) / 3)


def test_sweep_refuses_a_prompt_no_model_answered_and_a_misshapen_matrix() -> None:
    quality = QUALITY.copy()
    quality[2, :] = math.nan
    with pytest.raises(ValueError, match="row 2"):
        sweep(quality, COST, QUALITY, COST, [0.0])
    with pytest.raises(ValueError, match="cost_matrix"):
        sweep(QUALITY, COST[:2], QUALITY, COST, [0.0])


# ----------------------------------------------------------------------------- regret


def test_cumulative_regret_sums_the_gap_to_the_best() -> None:
    np.testing.assert_allclose(cumulative_regret([1.0, 0.0, 0.5], [1.0, 1.0, 1.0]), [0.0, 1.0, 1.5])
    with pytest.raises(ValueError):
        cumulative_regret([1.0], [1.0, 1.0])


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(1).normal(size=200)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_of_a_mean_covers_the_truth_about_as_often_as_promised() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for trial in range(trials):
        sample = rng.normal(loc=1.0, scale=2.0, size=100)
        low, high = bootstrap_ci(sample, n_resamples=500, seed=trial)
        assert low < sample.mean() < high
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_interval_width_matches_the_standard_error() -> None:
    sample = np.random.default_rng(5).normal(scale=2.0, size=400)
    low, high = bootstrap_ci(sample, n_resamples=2000)
    expected = 2 * 1.96 * sample.std() / math.sqrt(len(sample))
    assert high - low == pytest.approx(expected, rel=0.15)
    narrow = bootstrap_ci(sample, n_resamples=2000, level=0.5)
    assert narrow[1] - narrow[0] < (high - low) / 2


def test_bootstrap_resamples_rows_of_a_matrix_and_indices_of_aligned_arrays() -> None:
    rng = np.random.default_rng(2)
    matrix = np.column_stack([rng.normal(0.7, 0.1, 300), rng.normal(0.5, 0.1, 300)])

    def gap(rows: np.ndarray) -> float:
        return float(rows[:, 0].mean() - rows[:, 1].mean())

    low, high = bootstrap_ci(matrix, gap, seed=7)
    assert low < gap(matrix) < high
    assert low > 0.15 and high < 0.25
    # The index form draws the same rows for the same seed.
    by_index = bootstrap_indices_ci(len(matrix), lambda rows: gap(matrix[rows]), seed=7)
    assert by_index == (low, high)
