from __future__ import annotations

import numpy as np
import pytest

from majordome.bench.dataset import Dataset
from majordome.bench.learning import LearningResult, lambda_for_cost_share, quality_gap, simulate_feedback
from majordome.bench.metrics import Point
from majordome.router.intents import INTENTS
from majordome.router.quality import QualityInputs

MODELS = ["maths", "chat", "cheap"]
COST = np.array([0.002, 0.002, 0.001])


def split(n: int, seed: int) -> tuple[Dataset, QualityInputs]:
    """Two kinds of prompts: 'maths' answers the reasoning ones and fails the fan replies, 'chat'
    the other way round; 'cheap' costs half and gets half right whatever the prompt."""
    rng = np.random.default_rng(seed)
    reasoning = rng.random(n) < 0.5
    intents = np.zeros((n, len(INTENTS)))
    intents[:, INTENTS.index("general_help")] = 0.3
    intents[reasoning, INTENTS.index("reasoning")] = 0.7
    intents[~reasoning, INTENTS.index("fan_reply")] = 0.7
    centre = rng.normal(size=(2, 32))
    embeddings = centre[reasoning.astype(int)] + 0.5 * rng.normal(size=(n, 32))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    languages = QualityInputs.one_hot_languages(["en"] * n)
    features = QualityInputs(intents, languages, rng.uniform(2.0, 5.0, n), embeddings)
    scores = np.column_stack([reasoning, ~reasoning, rng.random(n) < 0.5]).astype(np.float64)
    data = Dataset(
        f"two-groups-{seed}", [f"p{seed}-{i}" for i in range(n)], [f"prompt {i}" for i in range(n)], MODELS,
        scores, np.tile(COST, (n, 1)),
    )  # fmt: skip
    return data, features


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, QualityInputs, Dataset, QualityInputs]:
    train, train_features = split(300, 1)
    test, test_features = split(120, 2)
    return train, train_features, test, test_features


def simulate(data: tuple[Dataset, QualityInputs, Dataset, QualityInputs], seed: int) -> LearningResult:
    return simulate_feedback(*data, events=600, lam=10.0, explore_share=1.0, seed=seed, checkpoints=(100, 300))


@pytest.fixture(scope="module")
def result(data: tuple[Dataset, QualityInputs, Dataset, QualityInputs]) -> LearningResult:
    return simulate(data, seed=0)


def test_regret_against_the_oracle_grows_sublinearly(result: LearningResult) -> None:
    early, late = result.rate(0.0, 0.05), result.rate(0.75, 1.0)
    assert early > 0.1  # it starts knowing nothing: the flat prior sends everything to 'cheap'
    assert late < early / 5
    assert result.rate(0.5, 0.75) < result.rate(0.05, 0.25) < early
    assert result.regret[-1] >= 0 and np.all(np.diff(result.regret) >= -1e-12)
    # One model is best on half the prompts only: the learner ends far below the best fixed policy.
    assert result.best_fixed in ("maths", "chat")
    assert result.regret_vs_fixed[-1] < -0.25 * result.events
    assert result.pulls["maths"] > 150 and result.pulls["chat"] > 150
    assert len(result.regret) == 600 and sum(result.pulls.values()) == 600


def test_after_feedback_it_routes_the_test_prompts_better_than_the_flat_prior(result: LearningResult) -> None:
    prior, learned = result.policies["prior-table"], result.policies["learned"]
    assert prior.quality == pytest.approx(0.5, abs=0.1)  # all to 'cheap': the flat table has nothing else
    assert learned.quality > 0.9
    assert result.curves["learned"].aiq > result.curves["prior-table"].aiq + 0.2
    gap = result.gaps["linear"]
    assert gap.compared > 0 and abs(gap.mean) < 2  # and about as well as the offline-trained router
    assert sorted(result.learning_curve) == [100, 300, 600]
    assert result.learning_aiq[600] >= result.learning_aiq[100] - 0.02


def test_a_seed_fixes_everything(data: tuple[Dataset, QualityInputs, Dataset, QualityInputs]) -> None:
    first, again, other = simulate(data, 3), simulate(data, 3), simulate(data, 4)
    np.testing.assert_array_equal(first.chosen_utility, again.chosen_utility)
    np.testing.assert_array_equal(first.oracle_utility, again.oracle_utility)
    assert first.curves["learned"].points == again.curves["learned"].points
    assert first.gaps == again.gaps and first.pulls == again.pulls
    assert not np.array_equal(first.oracle_utility, other.oracle_utility)  # another order of prompts


def test_quality_gap_reads_both_frontiers_at_the_reference_costs() -> None:
    reference = [Point(1.0, 0.5), Point(2.0, 0.9), Point(3.0, 0.9)]
    # Hand-computed: at cost 1 both give 0.5; at 2 and 3, 0.9 against 0.7 (flat past 2).
    gap = quality_gap(reference, [Point(1.0, 0.5), Point(2.0, 0.7)], operating_cost=2.0, policy=Point(2.0, 0.7))
    assert gap.mean == pytest.approx(40 / 3) and gap.max == pytest.approx(20.0) and gap.compared == 3
    assert gap.at_operating_point == pytest.approx(20.0) and gap.of_policy == pytest.approx(20.0)
    # A learner stuck on the cheap point keeps its quality at every budget: the gap shows in full.
    stuck = quality_gap(reference, [Point(1.0, 0.5)])
    assert stuck.mean == pytest.approx(80 / 3) and stuck.max == pytest.approx(40.0)
    # Below the learner's cheapest point it cannot work: those costs are not compared.
    dear = quality_gap(reference, [Point(2.0, 0.9)], operating_cost=1.0)
    assert dear.compared == 2 and dear.mean == pytest.approx(0.0) and np.isnan(dear.at_operating_point)


def test_lambda_for_cost_share_hits_the_share(data: tuple[Dataset, QualityInputs, Dataset, QualityInputs]) -> None:
    train = data[0]
    perfect = np.nan_to_num(train.scores) + np.array([0.0, 0.0, 0.6])  # 'cheap' looks good: cost decides
    lam = lambda_for_cost_share(perfect, train, COST, 0.5)
    choice = np.argmax(perfect - lam * COST, axis=1)
    assert np.all(choice == 2)  # half of the best model's cost: 'cheap' everywhere
    assert lambda_for_cost_share(perfect, train, COST, 1.0) < lam
