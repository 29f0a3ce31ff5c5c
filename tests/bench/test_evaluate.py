from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from majordome.bench import Dataset, evaluate
from majordome.bench.report import write_report
from majordome.bench.routers import default_routers
from majordome.bench.splits import kfold, remove_overlap

MATH = "Compute {a} times {b} and add {c}; show each step."
CHAT = "A fan writes: loved your video number {a}, you made my day {b}! Reply warmly."


def tiny(n: int = 80, seed: int = 0) -> Dataset:
    """Two models: 'strong' gets everything right, 'weak' fails on math but not on chat."""
    rng = np.random.default_rng(seed)
    prompts, scores = [], []
    for i in range(n):
        a, b, c = (int(x) for x in rng.integers(2, 99, 3))
        math = i % 2 == 0
        prompts.append((MATH if math else CHAT).format(a=a, b=b, c=c))
        scores.append([1.0, 0.0 if math else 1.0])
    cost = np.tile([0.01, 0.001], (n, 1))
    return Dataset("tiny", [f"p{i}" for i in range(n)], prompts, ["strong", "weak"], np.array(scores), cost)


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return evaluate(
        tiny(), folds=4, seed=1, routers=default_routers(["oracle", "knn", "linear", "rb-knn", "mf"]), bootstrap=50
    )


def test_end_to_end_learned_routers_recover_most_of_the_gap(result) -> None:  # type: ignore[no-untyped-def]
    assert result.strong == "strong" and result.weak == "weak"
    assert result.singles["strong"].quality == 1.0 and result.singles["weak"].quality == 0.5
    oracle = result.routers["oracle"]
    # Hand-computed: the weak model fails exactly the math half, so the oracle reaches PGR 1 with
    # 50 % of calls to the strong model, linearly from 0: APGR = 0.25 (the ramp) + 0.5 (flat at 1) = 0.75.
    assert oracle.apgr == pytest.approx(0.75)
    assert oracle.cpt50 == pytest.approx(0.25) and oracle.cpt80 == pytest.approx(0.4)
    assert result.routers["random"].apgr == pytest.approx(0.5)  # RouteLLM: random routing's PGR equals its share
    for name in ("knn", "linear", "rb-knn", "mf"):
        router = result.routers[name]
        assert router.apgr is not None and router.apgr > 0.7, name  # math vs chat is easy to tell apart
        assert router.cpt50 is not None and router.cpt50 < 0.5
        low, high = router.aiq_ci
        assert low <= router.aiq <= high
    assert result.online is not None and len(result.online.cumulative_regret) == 80


def test_the_same_seed_gives_the_same_numbers() -> None:
    first = evaluate(tiny(), folds=4, seed=3, routers=default_routers(["knn", "mf"]), bootstrap=20, online=False)
    second = evaluate(tiny(), folds=4, seed=3, routers=default_routers(["knn", "mf"]), bootstrap=20, online=False)
    for name in ("knn", "mf"):
        assert first.routers[name].points == second.routers[name].points
        assert first.routers[name].aiq_ci == second.routers[name].aiq_ci


def test_kfold_keeps_identical_prompts_together() -> None:
    data = tiny(20)
    data.prompts[5] = data.prompts[3] = "the same prompt"
    folds = kfold(data, 4, seed=0)
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(20))
    for train, test in folds:
        assert not set(train) & set(test)
        assert (3 in test) == (5 in test)


def test_overlap_between_train_and_test_is_removed_and_reported() -> None:
    train, test = tiny(10, seed=0), tiny(10, seed=0)
    test.prompt_ids = [f"t{i}" for i in range(10)]
    cleaned, notes = remove_overlap(train, test)
    assert cleaned.size == 0 and "10 test prompt(s)" in notes[0]


def test_report_files(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_report(result, tmp_path / "tiny")
    text = (path / "report.md").read_text()
    assert "| router | AIQ" in text and "APGR" in text and "oracle" in text
    assert (path / "report.json").exists() and (path / "quality_cost.png").stat().st_size > 1000
    assert (path / "regret.png").exists()


def test_kfold_keeps_a_cluster_together() -> None:
    data = tiny(20)
    data.clusters = [f"q{i // 2}" for i in range(20)]  # two turns per question
    for train, test in kfold(data, 5, seed=2):
        assert {data.clusters[i] for i in train}.isdisjoint({data.clusters[i] for i in test})
