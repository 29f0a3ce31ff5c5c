"""Evaluate routing policies on a dataset: curves, hull, AIQ, APGR/CPT, bootstrap intervals, online regret.

The procedure, the same for every dataset:

1. costs are filled from tokens × prices where the data has none (:mod:`majordome.bench.cost`);
2. prompts are featurised once, as the live router does (cached on disk);
3. the split is the dataset's own train/test (RouterBench; test prompts also in train are
   removed) or k-fold with identical prompts kept on one side (everything else); each router
   predicts every test prompt from a model fitted on the other side;
4. each router's quality–cost curve comes from sweeping λ in ``argmax(Q̂ − λ·ĉ)``, where ĉ is
   each model's mean cost on the training side (a router cannot know a call's cost before making
   it); the realised point for a λ is the mean actual cost and quality of the choices;
5. AIQ of each curve (and of the single models' hull, RouterBench's Zero router) over the range
   between the cheapest and the dearest single model; for two models, APGR and CPT(50%/80%)
   (RouteLLM); the quality each router reaches at a share of the best model's cost;
6. 95 % intervals by bootstrap over test prompts (the choices are fixed, the prompts resampled);
7. the online learner, simulated over the whole dataset in a seeded order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from majordome.bench import metrics
from majordome.bench.dataset import Dataset
from majordome.bench.features import featurize
from majordome.bench.online import OnlineResult, simulate_online
from majordome.bench.routers import BenchRouter, default_routers
from majordome.bench.splits import kfold, remove_overlap
from majordome.router.quality import QualityInputs
from majordome.router.router import Router

__all__ = ["BenchResult", "RouterResult", "evaluate"]

COST_SHARES = (0.1, 0.2, 0.5)


@dataclass
class RouterResult:
    name: str
    learned: bool
    points: list[metrics.Point]  # one per λ, in λ order
    strong_share: list[float] | None  # two-model datasets: share of calls to the strong model per λ
    aiq: float = float("nan")
    aiq_ci: tuple[float, float] = (float("nan"), float("nan"))
    apgr: float | None = None
    apgr_ci: tuple[float, float] | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    at_cost_share: dict[float, float] = field(default_factory=dict)
    fit_seconds: float = 0.0


@dataclass
class BenchResult:
    dataset: str
    setting: str
    models: list[str]
    n_test: int
    n_train: int | None
    singles: dict[str, metrics.Point]
    hull: list[metrics.Point]
    hull_aiq: float
    best_model: str
    strong: str | None
    weak: str | None
    routers: dict[str, RouterResult]
    online: OnlineResult | None
    problems: list[str]
    seconds: float
    lambdas: list[float]

    def best_learned(self) -> RouterResult | None:
        learned = [r for r in self.routers.values() if r.learned]
        return max(learned, key=lambda r: r.aiq) if learned else None


def _lambdas(costs: np.ndarray, count: int = 60) -> np.ndarray:
    positive = costs[np.isfinite(costs) & (costs > 0)]
    scale = float(np.median(positive)) if positive.size else 1.0
    return np.concatenate([[0.0], np.logspace(np.log10(1e-3 / scale), np.log10(1e3 / scale), count)])


def _choices(
    predicted: np.ndarray, predicted_cost: np.ndarray, available: np.ndarray, lambdas: np.ndarray
) -> np.ndarray:
    """``(len(lambdas), n)`` chosen model per prompt; ties go to the cheaper model."""
    out = np.empty((len(lambdas), predicted.shape[0]), dtype=np.int64)
    tie_break = predicted_cost * 1e-9
    for k, lam in enumerate(lambdas):
        utility = predicted - lam * predicted_cost - tie_break
        out[k] = np.where(available, utility, -np.inf).argmax(axis=1)
    return out


def _points(choices: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> list[metrics.Point]:
    rows = np.arange(scores.shape[0])
    return [metrics.Point(float(costs[rows, choice].mean()), float(scores[rows, choice].mean())) for choice in choices]


def _resampled_means(weights: np.ndarray, per_prompt: np.ndarray) -> np.ndarray:
    """``(resamples, k)``: the mean of each of the ``k`` rows of ``per_prompt`` (k, n) over each
    bootstrap resample, given as prompt counts ``weights`` (resamples, n)."""
    means: np.ndarray = weights @ per_prompt.T / weights.shape[1]
    return means


def _predict_all(
    routers: Sequence[BenchRouter],
    folds: Sequence[tuple[Dataset, QualityInputs, Dataset, QualityInputs]],
    test_rows: int,
    models: int,
    *,
    bars: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, float], np.ndarray]:
    predictions = {r.name: np.zeros((test_rows, models)) for r in routers}
    seconds = {r.name: 0.0 for r in routers}
    predicted_cost = np.zeros((test_rows, models))
    offset = 0
    bar = _bar(len(folds) * len(routers), "routers", bars)
    for train, train_features, test, test_features in folds:
        mean_cost = np.nanmean(train.cost_usd, axis=0)
        predicted_cost[offset : offset + test.size] = mean_cost[None, :]
        for router in routers:
            if bar is not None:
                bar.set_postfix_str(router.name)
                bar.update()
            started = time.perf_counter()
            router.fit(train, train_features)
            predictions[router.name][offset : offset + test.size] = router.predict(test, test_features)
            seconds[router.name] += time.perf_counter() - started
        offset += test.size
    if bar is not None:
        bar.close()
    return predictions, seconds, predicted_cost


def _bar(total: int, unit: str, enabled: bool) -> Any:
    """A tqdm bar on stderr, or None (disabled, or tqdm not installed)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, leave=False, dynamic_ncols=True)


def evaluate(
    data: Dataset,
    *,
    test: Dataset | None = None,
    folds: int = 5,
    seed: int = 0,
    routers: Sequence[BenchRouter] | None = None,
    bootstrap: int = 200,
    online: bool = True,
    router: Router | None = None,
    progress: Callable[[str], None] | None = None,
    name: str | None = None,
    bars: bool = False,
) -> BenchResult:
    """Evaluate ``routers`` on ``data`` (train → ``test`` when given, else k-fold).

    ``name`` labels the result (default: the dataset's name); ``progress`` receives one line per
    stage and ``bars`` shows progress bars (tqdm, on stderr) over folds and routers.
    """
    started = time.perf_counter()
    say = progress or (lambda _: None)
    routers = list(routers) if routers is not None else default_routers(seed=seed)
    understanding = router or Router()
    say(f"featurising {data.size + (test.size if test else 0)} prompts")
    if test is not None:
        problems = [f"train: {p}" for p in data.problems]
        test, notes = remove_overlap(data, test)
        problems += [f"test: {p}" for p in test.problems] + [f"test: {n}" for n in notes]
        train_features = featurize(data.prompts, understanding, bar=bars)
        test_features = featurize(test.prompts, understanding, bar=bars)
        fold_data = [(data, train_features, test, test_features)]
        evaluated, evaluated_features = test, test_features
        setting = f"train ({data.size}) -> test ({test.size})"
        n_train: int | None = data.size
    else:
        features = featurize(data.prompts, understanding, bar=bars)
        fold_data = []
        order: list[int] = []
        for train_idx, test_idx in kfold(data, folds, seed):
            fold_data.append(
                (data.take(train_idx), features.take(train_idx), data.take(test_idx), features.take(test_idx))
            )
            order += test_idx.tolist()
        evaluated, evaluated_features = data.take(order), features.take(order)
        setting = f"{folds}-fold cross-validation (seed {seed}), identical prompts kept in one fold"
        n_train = None
        problems = list(data.problems)
    say(f"fitting and predicting {len(routers)} routers on {len(fold_data)} split(s)")
    predictions, seconds, predicted_cost = _predict_all(
        routers, fold_data, evaluated.size, len(evaluated.models), bars=bars
    )

    scores = evaluated.scores
    costs = evaluated.cost_usd
    available = ~np.isnan(scores) & ~np.isnan(costs)
    scores0 = np.nan_to_num(scores)
    costs0 = np.nan_to_num(costs)
    singles = {
        m: metrics.Point(float(np.nanmean(costs[:, j])), float(np.nanmean(scores[:, j])))
        for j, m in enumerate(evaluated.models)
    }
    hull = metrics.frontier(list(singles.values()))
    cost_min = min(p.cost for p in singles.values())
    cost_max = max(p.cost for p in singles.values())
    best_model = max(singles, key=lambda m: (singles[m].quality, -singles[m].cost))
    two = len(evaluated.models) == 2
    strong = weak = None
    if two:
        strong = best_model
        weak = next(m for m in evaluated.models if m != strong)
    lambdas = _lambdas(predicted_cost)
    rng = np.random.default_rng(seed)
    # Each bootstrap resample as counts per prompt: a resampled mean is then one matrix product.
    weights = np.array(
        [
            np.bincount(rng.integers(0, evaluated.size, evaluated.size), minlength=evaluated.size)
            for _ in range(bootstrap)
        ],
        dtype=np.float64,
    ).reshape(bootstrap, evaluated.size)
    rows = np.arange(evaluated.size)

    results: dict[str, RouterResult] = {}
    for r in routers:
        choices = _choices(predictions[r.name], predicted_cost, available, lambdas)
        points = _points(choices, scores0, costs0)
        result = RouterResult(r.name, r.learned, points, None, fit_seconds=seconds[r.name])
        result.aiq = metrics.aiq(points, cost_min, cost_max)
        boot_quality = _resampled_means(weights, scores0[rows, choices])  # (resamples, λ)
        boot_cost = _resampled_means(weights, costs0[rows, choices])
        result.aiq_ci = _interval(
            [
                metrics.aiq(list(zip(c, q, strict=True)), cost_min, cost_max)
                for c, q in zip(boot_cost, boot_quality, strict=True)
            ]
        )
        best = singles[best_model]
        result.at_cost_share = {
            share: metrics.quality_at_cost_share(points, best.cost, best.quality, share) for share in COST_SHARES
        }
        if two and strong is not None and weak is not None:
            j_strong = evaluated.models.index(strong)
            shares = [float((c == j_strong).mean()) for c in choices]
            result.strong_share = shares
            q_weak, q_strong = singles[weak].quality, singles[strong].quality
            quality = [p.quality for p in points]
            result.apgr = metrics.apgr(shares, quality, q_weak, q_strong)
            result.cpt50 = metrics.cpt(shares, quality, q_weak, q_strong, 0.5)
            result.cpt80 = metrics.cpt(shares, quality, q_weak, q_strong, 0.8)
            boot_shares = _resampled_means(weights, (choices == j_strong).astype(np.float64))
            boot_models = _resampled_means(weights, scores0.T)  # (resamples, 2): each model's quality
            boot_apgr = [
                metrics.apgr(share, quality, float(model_q[1 - j_strong]), float(model_q[j_strong]))
                for share, quality, model_q in zip(boot_shares, boot_quality, boot_models, strict=True)
                if model_q[j_strong] > model_q[1 - j_strong]
            ]
            result.apgr_ci = _interval(boot_apgr)
        results[r.name] = result

    if two and strong is not None and weak is not None:
        results["random"] = _random_two(singles[weak], singles[strong], cost_min, cost_max, singles[best_model])
    else:
        cheapest = min(singles, key=lambda m: singles[m].cost)
        results["random"] = _random_mixture(singles[cheapest], singles[best_model], cost_min, cost_max)

    online_result = None
    if online:
        say("simulating the online learner")
        lam = 0.1 / max(cost_max, 1e-12)  # the dearest model's cost weighs 0.1 of quality
        online_result = simulate_online(evaluated, evaluated_features, lam=lam, seed=seed)
    return BenchResult(
        dataset=name or data.name,
        setting=setting,
        models=list(evaluated.models),
        n_test=evaluated.size,
        n_train=n_train,
        singles=singles,
        hull=hull,
        hull_aiq=metrics.aiq(hull, cost_min, cost_max),
        best_model=best_model,
        strong=strong,
        weak=weak,
        routers=results,
        online=online_result,
        problems=problems,
        seconds=time.perf_counter() - started,
        lambdas=[float(x) for x in lambdas],
    )


def _interval(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return (float("nan"), float("nan"))
    return (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))


def _random_two(
    weak: metrics.Point, strong: metrics.Point, cost_min: float, cost_max: float, best: metrics.Point
) -> RouterResult:
    """Random routing between two models: sending a share s of calls to the strong one gives, in
    expectation, the straight line between them."""
    shares = [i / 10 for i in range(11)]
    points = [
        metrics.Point(weak.cost + s * (strong.cost - weak.cost), weak.quality + s * (strong.quality - weak.quality))
        for s in shares
    ]
    result = RouterResult("random", False, points, shares)
    result.aiq = metrics.aiq(points, cost_min, cost_max)
    quality = [p.quality for p in points]
    result.apgr = metrics.apgr(shares, quality, weak.quality, strong.quality)
    result.cpt50 = metrics.cpt(shares, quality, weak.quality, strong.quality, 0.5)
    result.cpt80 = metrics.cpt(shares, quality, weak.quality, strong.quality, 0.8)
    result.at_cost_share = {s: metrics.quality_at_cost_share(points, best.cost, best.quality, s) for s in COST_SHARES}
    return result


def _random_mixture(cheap: metrics.Point, best: metrics.Point, cost_min: float, cost_max: float) -> RouterResult:
    """Random mixtures of the cheapest and the best model (the line between them)."""
    points = [
        metrics.Point(cheap.cost + s * (best.cost - cheap.cost), cheap.quality + s * (best.quality - cheap.quality))
        for s in (i / 10 for i in range(11))
    ]
    result = RouterResult("random", False, points, None)
    result.aiq = metrics.aiq(points, cost_min, cost_max)
    result.at_cost_share = {s: metrics.quality_at_cost_share(points, best.cost, best.quality, s) for s in COST_SHARES}
    return result


def summary(result: BenchResult) -> dict[str, Any]:
    """The result as plain data (the JSON report)."""
    return {
        "dataset": result.dataset,
        "setting": result.setting,
        "models": result.models,
        "n_test": result.n_test,
        "n_train": result.n_train,
        "best_model": result.best_model,
        "strong": result.strong,
        "weak": result.weak,
        "singles": {m: p._asdict() for m, p in result.singles.items()},
        "hull": [p._asdict() for p in result.hull],
        "hull_aiq": result.hull_aiq,
        "routers": {
            name: {
                "learned": r.learned,
                "aiq": r.aiq,
                "aiq_ci": list(r.aiq_ci),
                "apgr": r.apgr,
                "apgr_ci": list(r.apgr_ci) if r.apgr_ci else None,
                "cpt50": r.cpt50,
                "cpt80": r.cpt80,
                "quality_at_cost_share": {str(k): v for k, v in r.at_cost_share.items()},
                "points": [p._asdict() for p in r.points],
                "strong_share": r.strong_share,
                "fit_seconds": r.fit_seconds,
            }
            for name, r in result.routers.items()
        },
        "online": None
        if result.online is None
        else {
            "lambda": result.online.lam,
            "final_regret": result.online.final_regret,
            "best_fixed_final_regret": float(result.online.best_fixed_cumulative_regret[-1]),
            "late_regret_rate": result.online.late_rate(),
            "best_fixed_late_regret_rate": result.online.late_rate(result.online.best_fixed_cumulative_regret),
            "quality": result.online.quality,
            "cost": result.online.cost,
            "pulls": result.online.pulls,
        },
        "problems": result.problems,
        "seconds": result.seconds,
    }
