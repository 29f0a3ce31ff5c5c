"""Metrics for routing benchmarks: pure functions on numpy arrays, no I/O.

Two families, from two papers:

* **Many models, a cost-quality plane** — RouterBench (Hu et al. 2024, "RouterBench: A Benchmark
  for Multi-LLM Routing System", §3 "Math formulation for router evaluation"). A router, swept over
  its trade-off parameter, draws points ``(mean cost, mean quality)``. Any two achievable points can
  be mixed at random (linear interpolation), so what a router — or a set of single models, the
  *Zero router* — can reach is the non-decreasing convex hull of its points (:func:`frontier`).
  :func:`aiq` averages that hull over a cost range.
* **Two models, weak and strong** — RouteLLM (Ong et al. 2024, "RouteLLM: Learning to Route LLMs
  with Preference Data", §2 "LLM routing", the metrics paragraphs). The x-axis is the share of
  calls sent to the strong model; :func:`pgr` normalises quality between the weak model (0) and
  the strong one (1); :func:`apgr` averages it over the share; :func:`cpt` is the smallest share
  that reaches a target.

And the plumbing a benchmark needs around them: :func:`sweep` and :func:`threshold_curve` turn
predictions into those curves, :func:`bootstrap_ci` / :func:`bootstrap_indices_ci` give percentile
intervals, :func:`cumulative_regret` scores an online learner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "Point",
    "SharePoint",
    "aiq",
    "apgr",
    "bootstrap_ci",
    "bootstrap_indices_ci",
    "cpt",
    "cumulative_regret",
    "frontier",
    "pgr",
    "quality_at_cost_share",
    "sweep",
    "threshold_curve",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Relative tolerance under which two routing scores count as a tie (see sweep()).
_TIE_RTOL = 1e-12


class Point(NamedTuple):
    """A router (or a model) on the cost-quality plane: mean cost per call, mean quality."""

    cost: float
    quality: float


class SharePoint(NamedTuple):
    """A two-model router on RouteLLM's plane: share of calls to the strong model, mean quality."""

    strong_share: float
    quality: float


# --------------------------------------------------------------------------- RouterBench


def _as_points(points: Iterable[tuple[float, float]]) -> FloatArray:
    array = np.asarray([tuple(p) for p in points], dtype=np.float64)
    if array.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"points must be (cost, quality) pairs, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("points must be finite (a NaN cost or quality is a point that was not measured)")
    return array


def _cross(o: FloatArray, a: FloatArray, b: FloatArray) -> float:
    """z of (a - o) × (b - o): > 0 when o→a→b turns left (counter-clockwise)."""
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def frontier(points: Iterable[tuple[float, float]]) -> list[Point]:
    """The non-decreasing convex hull of ``points``, sorted by cost: what is reachable by mixing them.

    RouterBench §3: choosing between two routers (or models) at random with probability ``t``
    reaches every point of the segment between them, in expectation; so the set reachable from a
    collection of points is their convex hull, and the useful part of it is its upper-left edge —
    only the points that raise quality as cost rises. Applied to the single models this is the
    paper's **Zero router**, the baseline a router must beat; applied to a router's own sweep it is
    the curve :func:`aiq` integrates.

    Computed as the upper hull (monotone chain) from the cheapest point — the best one among equally
    cheap points — up to the first point of maximal quality; points on a hull edge are dropped, and
    so is everything dearer than the best point (it buys no quality). Empty in, empty out.
    """
    array = _as_points(points)
    if len(array) == 0:
        return []
    # By cost, and among equal costs best quality first, so the chain never starts with a point
    # that sits straight below another (the chain drops the later, lower ones).
    ordered = array[np.lexsort((-array[:, 1], array[:, 0]))]

    hull: list[FloatArray] = []
    for point in ordered:
        # Upper hull: the chain must turn clockwise; a left turn or a straight line drops the middle.
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
            hull.pop()
        hull.append(point)

    best = max(range(len(hull)), key=lambda i: (hull[i][1], -i))  # first point of maximal quality
    return [Point(float(p[0]), float(p[1])) for p in hull[: best + 1]]


def _curve_quality(hull: Sequence[Point], cost: FloatArray, below: float) -> FloatArray:
    """The hull as a function of cost: linear between vertices, flat past the dearest vertex
    (RouterBench's extrapolation: a router can always spend more and keep its quality), and
    ``below`` under the cheapest vertex, where the router cannot operate at all."""
    costs = np.array([p.cost for p in hull])
    qualities = np.array([p.quality for p in hull])
    values = np.interp(cost, costs, qualities)  # flat on both sides...
    return np.where(cost < costs[0], below, values)  # ...except below its own range


def _trapezoid(y: FloatArray, x: FloatArray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def aiq(points: Iterable[tuple[float, float]], cost_min: float, cost_max: float) -> float:
    """Average Improvement in Quality (RouterBench §3): the mean quality of the router's curve over
    ``[cost_min, cost_max]``, i.e. ``∫ R̃(c) dc / (cost_max - cost_min)``, where ``R̃`` is the
    non-decreasing convex hull of the router's points (:func:`frontier`).

    Outside the curve's own cost range: to the right of its dearest vertex the curve stays flat
    (RouterBench's extrapolation — extra budget can always be left unspent); to the left of its
    cheapest vertex it counts as **quality 0**, because the router cannot work that cheaply and a
    range it cannot reach earns no credit (a single expensive point must not score its quality over
    the whole range). Pick ``[cost_min, cost_max]`` once for all routers compared — typically the
    cheapest and the dearest single model — so the numbers are comparable. The integral is exact
    (the curve is piecewise linear).
    """
    if not (np.isfinite(cost_min) and np.isfinite(cost_max)) or cost_max <= cost_min:
        raise ValueError(f"need cost_min < cost_max, got [{cost_min}, {cost_max}]")
    hull = frontier(points)
    if not hull:
        raise ValueError("aiq needs at least one point")
    low = max(cost_min, hull[0].cost)
    if low >= cost_max:
        return 0.0
    inner = [p.cost for p in hull if low < p.cost < cost_max]
    xs = np.array([low, *inner, cost_max], dtype=np.float64)
    ys = _curve_quality(hull, xs, below=0.0)
    return _trapezoid(ys, xs) / (cost_max - cost_min)


def quality_at_cost_share(
    points: Iterable[tuple[float, float]], best_cost: float, best_quality: float, cost_share: float
) -> float:
    """The share of the best single model's quality that a router reaches for ``cost_share`` × that
    model's cost: ``R̃(cost_share · best_cost) / best_quality``, on the router's non-decreasing
    convex hull ``R̃`` (:func:`frontier`, interpolated linearly, flat past its dearest vertex).

    The headline "x % of GPT-4's quality at y % of its cost". NaN when the budget is below the
    router's cheapest point: it does not operate there, and 0 would read as a measurement.
    """
    if not best_quality > 0:
        raise ValueError(f"best_quality must be positive, got {best_quality}")
    if not best_cost > 0 or not cost_share >= 0:
        raise ValueError(f"need best_cost > 0 and cost_share >= 0, got {best_cost}, {cost_share}")
    hull = frontier(points)
    if not hull:
        raise ValueError("quality_at_cost_share needs at least one point")
    budget = np.array([cost_share * best_cost])
    return float(_curve_quality(hull, budget, below=np.nan)[0]) / best_quality


def _matrix(name: str, array: npt.ArrayLike, shape: tuple[int, ...] | None = None) -> FloatArray:
    result = np.asarray(array, dtype=np.float64)
    if shape is not None:
        try:
            result = np.broadcast_to(result, shape)
        except ValueError:
            raise ValueError(f"{name} has shape {result.shape}, expected {shape}") from None
    elif result.ndim != 2:
        raise ValueError(f"{name} must be a (prompts, models) matrix, got shape {result.shape}")
    return result


def sweep(
    quality_matrix: npt.ArrayLike,
    cost_matrix: npt.ArrayLike,
    predicted_quality: npt.ArrayLike,
    predicted_cost: npt.ArrayLike,
    lambdas: Iterable[float],
) -> list[Point]:
    """The cost-quality points of a predictive router swept over its price of quality ``λ``.

    For each ``λ``, each prompt goes to the model maximising ``predicted_quality - λ·predicted_cost``
    (ties, within a relative 1e-12, to the lower predicted cost, then to the first model); the
    point is ``(mean actual cost, mean actual quality)`` of those choices. This is RouterBench's
    predictive router (§4: it maximises ``λ·P - cost`` with ``λ`` a willingness to pay; the same
    family, with our ``λ`` its reciprocal). ``λ = 0`` buys the best predicted quality; large ``λ``
    the cheapest predicted model.

    Matrices are ``(prompts, models)``; ``predicted_cost`` may also be one cost per model ``(models,)``.
    A model with no outcome for a prompt (NaN actual quality or cost, or NaN prediction) is not a
    candidate for that prompt — offline, its choice could not be scored. A prompt left with no
    candidate is an error: drop it from the dataset first.
    """
    quality = _matrix("quality_matrix", quality_matrix)
    shape = quality.shape
    cost = _matrix("cost_matrix", cost_matrix, shape)
    pred_q = _matrix("predicted_quality", predicted_quality, shape)
    pred_c = _matrix("predicted_cost", predicted_cost, shape)
    eligible = np.isfinite(quality) & np.isfinite(cost) & np.isfinite(pred_q) & np.isfinite(pred_c)
    empty = np.flatnonzero(~eligible.any(axis=1))
    if len(empty):
        raise ValueError(f"{len(empty)} prompt(s) have no model with an outcome, e.g. row {int(empty[0])}")
    rows = np.arange(shape[0])
    points = []
    for lam in lambdas:
        if not np.isfinite(lam):
            raise ValueError(f"lambda must be finite, got {lam}")
        with np.errstate(invalid="ignore"):
            score = np.where(eligible, pred_q - lam * pred_c, -np.inf)
        top = score.max(axis=1, keepdims=True)
        tied = score >= top - _TIE_RTOL * np.maximum(1.0, np.abs(top))
        choice = np.argmin(np.where(tied & eligible, pred_c, np.inf), axis=1)
        points.append(Point(float(cost[rows, choice].mean()), float(quality[rows, choice].mean())))
    return points


# --------------------------------------------------------------------------- RouteLLM


@overload
def pgr(quality: float, q_weak: float, q_strong: float) -> float: ...
@overload
def pgr(quality: npt.NDArray[np.floating], q_weak: float, q_strong: float) -> FloatArray: ...
def pgr(quality: float | npt.NDArray[np.floating], q_weak: float, q_strong: float) -> float | FloatArray:
    """Performance Gap Recovered (RouteLLM §2): ``(quality - q_weak) / (q_strong - q_weak)``.

    0 is the weak model's quality, 1 the strong model's; above 1 a router beats the strong model.
    Undefined — a ValueError — when the two models score the same.
    """
    gap = q_strong - q_weak
    if not np.isfinite(gap) or gap == 0:
        raise ValueError(f"PGR needs two different, finite qualities, got weak={q_weak}, strong={q_strong}")
    if isinstance(quality, np.ndarray):
        return (quality.astype(np.float64) - q_weak) / gap
    return (float(quality) - q_weak) / gap


def _pgr_curve(
    strong_share: npt.ArrayLike, quality: npt.ArrayLike, q_weak: float, q_strong: float
) -> tuple[FloatArray, FloatArray]:
    """The PGR curve sorted by share, with (0, 0) and (1, 1) added where the curve lacks them."""
    share = np.asarray(strong_share, dtype=np.float64).ravel()
    values = np.asarray(quality, dtype=np.float64).ravel()
    if share.shape != values.shape:
        raise ValueError(f"strong_share has {share.size} values, quality {values.size}")
    if not (np.all(np.isfinite(share)) and np.all(np.isfinite(values))):
        raise ValueError("strong_share and quality must be finite")
    if np.any((share < 0) | (share > 1)):
        raise ValueError("strong_share must lie in [0, 1]")
    gains = pgr(values, q_weak, q_strong)
    if not np.any(share == 0.0):
        share, gains = np.append(share, 0.0), np.append(gains, 0.0)
    if not np.any(share == 1.0):
        share, gains = np.append(share, 1.0), np.append(gains, 1.0)
    order = np.argsort(share, kind="stable")
    return share[order], gains[order]


def apgr(strong_share: npt.ArrayLike, quality: npt.ArrayLike, q_weak: float, q_strong: float) -> float:
    """Average Performance Gap Recovered (RouteLLM §2): ``∫₀¹ PGR(s) ds`` over the share ``s`` of
    calls to the strong model.

    The measured points are sorted by share and integrated by the trapezoidal rule. A curve without
    a point at share 0 or 1 gets the endpoint every two-model router has there — all-weak
    ``(0, q_weak)``, PGR 0, and all-strong ``(1, q_strong)``, PGR 1 — so the integral always spans
    [0, 1]. (The paper approximates the integral by averaging PGR at shares 10 %, 20 %, …, 100 %;
    the trapezoid over the whole curve is the same integral, without that sum's upward bias: on a
    straight line it gives 0.5, the sum 0.55.)

    Random routing sends each prompt to the strong model with probability ``s`` whatever the prompt,
    so its expected quality is ``(1 - s)·q_weak + s·q_strong`` and its PGR is ``s``: APGR 0.5 — the
    bar a router must clear. The oracle reaches well above it.
    """
    share, gains = _pgr_curve(strong_share, quality, q_weak, q_strong)
    return _trapezoid(gains, share)


def cpt(
    strong_share: npt.ArrayLike, quality: npt.ArrayLike, q_weak: float, q_strong: float, target_pgr: float
) -> float:
    """Call-Performance Threshold (RouteLLM §2), ``CPT(x %)``: the smallest share of calls to the
    strong model at which the router's PGR reaches ``target_pgr`` (0.5 for CPT(50 %)).

    The curve is sorted by share and completed with the endpoints as in :func:`apgr`; between two
    measured points PGR is interpolated linearly, so the answer is where the polyline first reaches
    the target. Random routing gives ``CPT(x %) = x %``. Returns **NaN** when the curve never
    reaches the target (a target above 1, or a measured all-strong point below it): "never" must
    not read as "at 100 %".
    """
    if not np.isfinite(target_pgr):
        raise ValueError(f"target_pgr must be finite, got {target_pgr}")
    share, gains = _pgr_curve(strong_share, quality, q_weak, q_strong)
    if gains[0] >= target_pgr:
        return float(share[0])
    for i in range(1, len(share)):
        if gains[i] >= target_pgr:
            # gains[i - 1] < target <= gains[i]: interpolate on this segment.
            fraction = (target_pgr - gains[i - 1]) / (gains[i] - gains[i - 1])
            return float(share[i - 1] + fraction * (share[i] - share[i - 1]))
    return float("nan")


def threshold_curve(
    p_strong_better: npt.ArrayLike,
    q_weak_row: npt.ArrayLike,
    q_strong_row: npt.ArrayLike,
    thresholds: Iterable[float],
) -> list[SharePoint]:
    """The (share of strong calls, mean quality) curve of a two-model router over its thresholds.

    RouteLLM's routers send a prompt to the strong model when the predicted probability that the
    strong model does better is at least the threshold ``α`` (§2); each threshold gives one point.
    ``q_weak_row`` and ``q_strong_row`` are each model's score on each prompt. Every input must be
    finite: restrict the dataset to prompts both models answered before calling.
    """
    p = np.asarray(p_strong_better, dtype=np.float64).ravel()
    weak = np.asarray(q_weak_row, dtype=np.float64).ravel()
    strong = np.asarray(q_strong_row, dtype=np.float64).ravel()
    if not (p.shape == weak.shape == strong.shape) or p.size == 0:
        raise ValueError(f"need three non-empty rows of one length, got {p.size}, {weak.size}, {strong.size}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(weak)) and np.all(np.isfinite(strong))):
        raise ValueError("threshold_curve needs finite probabilities and scores on every prompt")
    curve = []
    for alpha in thresholds:
        to_strong = p >= alpha
        curve.append(SharePoint(float(to_strong.mean()), float(np.where(to_strong, strong, weak).mean())))
    return curve


# --------------------------------------------------------------------------- online learning


def cumulative_regret(chosen_reward: npt.ArrayLike, best_reward: npt.ArrayLike) -> FloatArray:
    """Cumulative regret of a sequence of choices: ``R_t = Σ_{i≤t} (best_reward_i - chosen_reward_i)``.

    The standard bandit definition (the reward the best arm in hindsight would have earned on each
    step, minus the reward earned). Non-decreasing when ``best_reward`` is really the best.
    """
    chosen = np.asarray(chosen_reward, dtype=np.float64)
    best = np.asarray(best_reward, dtype=np.float64)
    if chosen.ndim != 1 or chosen.shape != best.shape:
        raise ValueError(f"need two 1-D arrays of one length, got {chosen.shape} and {best.shape}")
    if not (np.all(np.isfinite(chosen)) and np.all(np.isfinite(best))):
        raise ValueError("rewards must be finite")
    return np.cumsum(best - chosen)


# --------------------------------------------------------------------------- uncertainty


def bootstrap_indices_ci(
    n: int,
    statistic: Callable[[IntArray], float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic computed on resampled row indices.

    Each of ``n_resamples`` draws picks ``n`` indices in ``[0, n)`` with replacement and passes them
    to ``statistic``, which indexes whatever aligned arrays it needs (score matrix, cost matrix,
    predictions...) and returns a number — so the whole pipeline, e.g. sweep then AIQ, is
    resampled prompt by prompt. The interval is the ``(1 - level)/2`` and ``(1 + level)/2``
    quantiles of the resampled statistics (Efron's percentile method). Deterministic for a given
    ``seed``. A statistic that returns NaN on some resample makes the bound NaN: no silent dropping.
    """
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got {n}, {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)], dtype=np.float64)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def bootstrap_ci(
    values: npt.ArrayLike,
    statistic: Callable[[FloatArray], float] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(values)`` (the mean by default).

    Resamples along the first axis: the elements of a 1-D array, the rows of a matrix (one row per
    prompt, say, with ``statistic`` recomputing a metric from the resampled matrix). See
    :func:`bootstrap_indices_ci` for the method and for statistics over several aligned arrays.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 0 or len(data) == 0:
        raise ValueError("bootstrap_ci needs at least one value")

    def mean(sample: FloatArray) -> float:
        return float(sample.mean())

    stat = statistic or mean
    return bootstrap_indices_ci(
        len(data), lambda rows: stat(data[rows]), n_resamples=n_resamples, seed=seed, level=level
    )
