"""Learning from feedback, simulated: does the online learner catch up with the offline routers?

:func:`simulate_feedback` streams prompts of a dataset's *training* side to the feedback learner
(:class:`~majordome.feedback.learner.BanditQuality`) as the live router would: for each prompt the
learner estimates every model's quality (a Thompson draw on a share of the traffic, its posterior
mean otherwise), the model maximising ``Q̂ − λ·ĉ`` is chosen (``ĉ``: each model's mean cost on the
training side — a call's own cost is not known before it is made), and only that model's score is
revealed and fed back. The learner starts from the prior table (:class:`PriorQuality` of the
policy). The dataset's models are not the catalogue's, so for them the policy has no priors and the
table is flat (the policy's ``default_prior`` for every model): the learner starts knowing nothing
about which model is better and has only the feedback to tell them apart.

Two kinds of numbers come out:

- **Regret over the stream**, per event, against the *oracle* (the best utility any model had on
  that prompt, ``score − λ·actual cost``) and against the *best fixed policy* (the single model
  with the best mean utility over the streamed prompts, in hindsight).
- **Quality at equal cost on the test side**, where every model's outcome is known: the learner's
  greedy predictions (snapshots after 250, 500, 1000… events), the prior table before learning,
  and the offline-trained routers (majordome's ``linear`` and ``knn`` quality models, fitted with
  *every* model's outcome on every training prompt revealed) are each swept over the λ grid of
  :mod:`majordome.bench.evaluate`; :func:`quality_gap` compares their non-decreasing frontiers.
  A fifth curve, ``full-information``, is the learner's own model class fitted on every training
  outcome (:meth:`BanditQuality.fit`): the gap between it and the offline routers is what the
  learner's context cannot represent; the gap between it and the learner is the price of seeing
  only the chosen model's outcome, ``events`` times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from majordome.bench import metrics
from majordome.bench.dataset import Dataset
from majordome.bench.evaluate import _lambdas
from majordome.bench.routers import MajordomeQualityRouter
from majordome.feedback.learner import BanditQuality, context_of
from majordome.router.policy import Policy
from majordome.router.quality import PriorQuality, QualityInputs

__all__ = [
    "CHECKPOINTS",
    "Curve",
    "Gap",
    "LearningResult",
    "lambda_for_cost_share",
    "offline_routers",
    "quality_gap",
    "simulate_feedback",
]

CHECKPOINTS = (250, 500, 1000, 2000)  # events after which the learner is evaluated on the test side
OFFLINE = ("linear", "knn")


@dataclass(frozen=True)
class Curve:
    """One router on the test side: its sweep over the λ grid, the frontier of that, its AIQ."""

    name: str
    points: list[metrics.Point]  # one per λ of the grid, in λ order
    frontier: list[metrics.Point]
    aiq: float


@dataclass(frozen=True)
class Gap:
    """How far a router's frontier lies below a reference's, in quality points (× 100; positive:
    the reference is better), at the reference's operating costs."""

    mean: float  # over the reference's sweep costs in the range both curves can work in
    max: float
    at_operating_point: float  # at the cost the reference reaches at the simulation's λ
    of_policy: float  # at the learner's own test point at the simulation's λ
    compared: int  # how many costs the mean and max are taken over (0: the ranges do not overlap)


@dataclass(frozen=True)
class LearningResult:
    lam: float
    events: int
    explore_share: float
    seed: int
    models: list[str]
    chosen_utility: np.ndarray  # (events,): score − λ·actual cost of the learner's choices
    oracle_utility: np.ndarray  # (events,): the best any model had on that prompt
    fixed_utility: np.ndarray  # (events,): the best fixed model's, on that prompt
    best_fixed: str
    chosen_quality: np.ndarray  # (events,) scores of the learner's choices
    chosen_cost: np.ndarray  # (events,) actual costs of the learner's choices
    pulls: dict[str, int]
    explored: int  # events on which a Thompson draw was used
    explore_changed: int  # ... and on which it chose another model than the greedy estimate would
    cost_range: tuple[float, float]  # the cheapest and the dearest single model's test cost (AIQ range)
    curves: dict[str, Curve]  # "learned", "prior-table", "full-information", "linear", "knn"
    policies: dict[str, metrics.Point]  # the same routers' test (cost, quality) at the simulation's λ
    gaps: dict[str, Gap]  # offline router -> the learner's gap to it after all events
    learning_curve: dict[int, dict[str, Gap]] = field(default_factory=dict)  # events -> router -> gap
    learning_aiq: dict[int, float] = field(default_factory=dict)  # events -> the learner's AIQ

    @property
    def regret(self) -> np.ndarray:
        """Cumulative regret against the oracle."""
        return metrics.cumulative_regret(self.chosen_utility, self.oracle_utility)

    @property
    def fixed_regret(self) -> np.ndarray:
        """The best fixed model's own cumulative regret against the oracle (the bar to get under)."""
        return metrics.cumulative_regret(self.fixed_utility, self.oracle_utility)

    @property
    def regret_vs_fixed(self) -> np.ndarray:
        """Cumulative regret against the best fixed model (negative: the learner did better)."""
        return metrics.cumulative_regret(self.chosen_utility, self.fixed_utility)

    def rate(self, start: float, stop: float, curve: np.ndarray | None = None) -> float:
        """Regret per event between two fractions of the stream (of ``curve``, by default the
        regret against the oracle): comparing an early and a late window says whether it grows
        sublinearly."""
        values = self.regret if curve is None else curve
        first, last = round(start * len(values)), round(stop * len(values))
        if last <= first:
            return 0.0
        before = float(values[first - 1]) if first > 0 else 0.0
        return (float(values[last - 1]) - before) / (last - first)


def _curve(
    name: str,
    test: Dataset,
    predicted: np.ndarray,
    mean_cost: np.ndarray,
    lambdas: np.ndarray,
    cost_range: tuple[float, float],
) -> Curve:
    points = metrics.sweep(test.scores, test.cost_usd, predicted, mean_cost, lambdas)
    return Curve(name, points, metrics.frontier(points), metrics.aiq(points, *cost_range))


def _on_frontier(hull: Sequence[metrics.Point], cost: np.ndarray) -> np.ndarray:
    """The frontier as a function of cost: linear between vertices, flat past the dearest one,
    NaN below the cheapest (the router cannot work that cheaply)."""
    costs = np.array([p.cost for p in hull])
    qualities = np.array([p.quality for p in hull])
    values: np.ndarray = np.where(cost < costs[0], np.nan, np.interp(cost, costs, qualities))
    return values


def quality_gap(
    reference: Sequence[metrics.Point],
    learner: Sequence[metrics.Point],
    operating_cost: float | None = None,
    policy: metrics.Point | None = None,
) -> Gap:
    """The reference's quality minus the learner's, in points, at equal cost.

    Both curves are taken as their non-decreasing frontiers (:func:`metrics.frontier`: mixing two
    operating points at random reaches the segment between them), read as a function of the
    budget: linear between vertices, flat past the dearest one (budget left unspent, as in
    RouterBench's AIQ), undefined below the cheapest one (the router cannot work that cheaply).
    They are compared at the reference's own sweep costs from the dearer of the two cheapest
    points up — the range both can work in. A learner that never learnt to use the dear models
    therefore shows its gap in full instead of hiding behind a narrow range of its own.
    ``operating_cost`` adds one comparison at that cost, and ``policy`` one at the learner's own
    operating point (the reference's frontier there minus the point's quality); NaN when not given
    or out of range.
    """
    ref_hull, learn_hull = metrics.frontier(reference), metrics.frontier(learner)
    low = max(ref_hull[0].cost, learn_hull[0].cost)
    costs = np.unique([p.cost for p in reference if p.cost >= low])
    gaps = 100.0 * (_on_frontier(ref_hull, costs) - _on_frontier(learn_hull, costs))
    gaps = gaps[np.isfinite(gaps)]
    at = of_policy = float("nan")
    if operating_cost is not None:
        point = np.array([operating_cost])
        at = float(100.0 * (_on_frontier(ref_hull, point) - _on_frontier(learn_hull, point))[0])
    if policy is not None:
        of_policy = float(100.0 * (_on_frontier(ref_hull, np.array([policy.cost]))[0] - policy.quality))
    if not len(gaps):
        return Gap(float("nan"), float("nan"), at, of_policy, 0)
    return Gap(float(gaps.mean()), float(gaps.max()), at, of_policy, len(gaps))


def offline_routers(
    train: Dataset, train_features: QualityInputs, *, kinds: Sequence[str] = OFFLINE, policy: Policy | None = None
) -> dict[str, MajordomeQualityRouter]:
    """The offline-trained routers (``kinds`` among ``linear``, ``knn``, ``prior``), fitted with
    every training outcome revealed. Their test predictions are what :func:`simulate_feedback`
    takes as ``offline``: fit once, predict once, reuse across seeds and λ."""
    out = {}
    for kind in kinds:
        router = MajordomeQualityRouter(kind, policy)
        router.fit(train, train_features)
        out[kind] = router
    return out


def lambda_for_cost_share(predicted: np.ndarray, data: Dataset, mean_cost: np.ndarray, share: float) -> float:
    """The λ of the grid at which a router with these predictions on ``data`` spends closest (in
    log cost) to ``share`` of the best single model's mean cost on ``data``."""
    lambdas = _lambdas(mean_cost)
    points = metrics.sweep(data.scores, data.cost_usd, predicted, mean_cost, lambdas)
    quality, cost = np.nanmean(data.scores, axis=0), np.nanmean(data.cost_usd, axis=0)
    best = max(range(len(data.models)), key=lambda j: (quality[j], -cost[j]))
    target = share * float(cost[best])
    distance = [abs(np.log(max(p.cost, 1e-30)) - np.log(target)) for p in points]
    return float(lambdas[int(np.argmin(distance))])


def _stream(size: int, events: int, rng: np.random.Generator) -> np.ndarray:
    """``events`` row indices: seeded permutations of the rows, a fresh one for each pass."""
    passes = -(-events // size)
    return np.concatenate([rng.permutation(size) for _ in range(passes)])[:events]


def simulate_feedback(
    train: Dataset,
    train_features: QualityInputs,
    test: Dataset,
    test_features: QualityInputs,
    *,
    events: int = 2000,
    lam: float,
    explore_share: float = 1.0,
    seed: int = 0,
    policy: Policy | None = None,
    offline: Mapping[str, np.ndarray] | None = None,
    checkpoints: Sequence[int] = CHECKPOINTS,
) -> LearningResult:
    """Stream ``events`` training prompts through the learner at price ``lam``, then compare it on
    the test side with the prior table and the offline routers (see the module's docstring).

    ``explore_share``: the share of events on which the choice uses a Thompson draw of the
    learner (:meth:`BanditQuality.sample`) instead of its posterior mean — the share of traffic
    the live router lets explore (1.0: Thompson sampling on every event). ``offline`` gives the
    offline routers' test predictions, by name (fitted here with :func:`offline_routers` when
    omitted). ``checkpoints``: after how many events the learner is also evaluated on the test
    side (the learning curve). ``seed`` fixes the stream's order, which events explore and the
    learner's draws: one seed, one result.
    """
    if events < 1 or train.size == 0 or test.size == 0:
        raise ValueError(f"need events >= 1 and non-empty splits, got {events}, {train.size}, {test.size}")
    if not 0.0 <= explore_share <= 1.0:
        raise ValueError(f"explore_share must lie in [0, 1], got {explore_share}")
    if list(train.models) != list(test.models):
        raise ValueError("train and test must have the same models, in the same order")
    policy = policy or Policy.default()
    models = list(train.models)
    prior = PriorQuality(policy, models)
    learner = BanditQuality(PriorQuality(policy, models), models, seed=seed)

    scores, cost = train.scores, train.cost_usd
    available = ~np.isnan(scores) & ~np.isnan(cost)
    if not available.any(axis=1).all():
        raise ValueError("every training prompt needs at least one model with a score and a cost")
    mean_cost = np.nanmean(np.where(available, cost, np.nan), axis=0)
    mean_cost = np.nan_to_num(mean_cost, nan=float(np.nanmax(mean_cost)))
    tie_break = mean_cost * 1e-9  # equal estimates: the cheaper model
    utility = np.where(available, np.nan_to_num(scores) - lam * np.nan_to_num(cost), -np.inf)
    oracle = utility.max(axis=1)
    table = train.outcome_table()
    contexts = context_of(train_features)
    base = learner.base.predict(train_features, models)

    rng = np.random.default_rng(seed)
    order = _stream(train.size, events, rng)
    explore = rng.random(events) < explore_share
    fixed_means = np.where(np.isfinite(utility[order]), utility[order], np.nan)
    best_fixed = int(np.nanargmax(np.nanmean(fixed_means, axis=0)))

    test_cost = np.nanmean(test.cost_usd, axis=0)
    cost_range = (float(np.nanmin(test_cost)), float(np.nanmax(test_cost)))
    lambdas = _lambdas(mean_cost)
    if offline is None:
        fitted = offline_routers(train, train_features, policy=policy)
        offline = {name: router.predict(test, test_features) for name, router in fitted.items()}

    def at_lam(predicted: np.ndarray) -> metrics.Point:
        return metrics.sweep(test.scores, test.cost_usd, predicted, mean_cost, [lam])[0]

    curves = {
        name: _curve(name, test, predicted, mean_cost, lambdas, cost_range) for name, predicted in offline.items()
    }
    policies = {name: at_lam(predicted) for name, predicted in offline.items()}

    def gaps_now(learned: Curve, policy_point: metrics.Point) -> dict[str, Gap]:
        return {
            name: quality_gap(curves[name].points, learned.points, policies[name].cost, policy_point)
            for name in offline
        }

    chosen = np.zeros(events, dtype=np.int64)
    explored = changed = 0
    learning_curve: dict[int, dict[str, Gap]] = {}
    learning_aiq: dict[int, float] = {}
    wanted = sorted({c for c in checkpoints if 0 < c < events} | {events})
    for step, row in enumerate(order):
        inputs = train_features.take([row])
        greedy = learner.predict(inputs, models)[0]
        estimate = greedy
        if explore[step]:
            estimate = learner.sample(inputs, models)[0]
            explored += 1
        score = np.where(available[row], estimate - lam * mean_cost - tie_break, -np.inf)
        model = int(np.argmax(score))
        if explore[step] and model != int(
            np.argmax(np.where(available[row], greedy - lam * mean_cost - tie_break, -np.inf))
        ):
            changed += 1
        chosen[step] = model
        learner.update(models[model], contexts[row], float(scores[row, model]), float(base[row, model]))
        if step + 1 in wanted:
            predicted = learner.predict(test_features, models)
            learned = _curve("learned", test, predicted, mean_cost, lambdas, cost_range)
            policy_point = at_lam(predicted)
            learning_curve[step + 1] = gaps_now(learned, policy_point)
            learning_aiq[step + 1] = learned.aiq
            if step + 1 == events:
                curves["learned"], policies["learned"] = learned, policy_point

    for name, quality_model in (
        ("prior-table", prior),
        ("full-information", BanditQuality(PriorQuality(policy, models), models).fit(train_features, table)),
    ):
        predicted = quality_model.predict(test_features, models)
        curves[name], policies[name] = _curve(name, test, predicted, mean_cost, lambdas, cost_range), at_lam(predicted)
    return LearningResult(
        lam=lam,
        events=events,
        explore_share=explore_share,
        seed=seed,
        models=models,
        chosen_utility=utility[order, chosen],
        oracle_utility=oracle[order],
        fixed_utility=np.where(np.isfinite(utility[order, best_fixed]), utility[order, best_fixed], oracle[order]),
        best_fixed=models[best_fixed],
        chosen_quality=scores[order, chosen],
        chosen_cost=cost[order, chosen],
        pulls={m: int((chosen == j).sum()) for j, m in enumerate(models)},
        explored=explored,
        explore_changed=changed,
        cost_range=cost_range,
        curves=curves,
        policies=policies,
        gaps=learning_curve[events],
        learning_curve=learning_curve,
        learning_aiq=learning_aiq,
    )
