"""Routers as the benchmarks evaluate them: each predicts Q(model | prompt) for a test set.

A benchmark router is fitted on a training :class:`~majordome.bench.dataset.Dataset` and predicts
a ``(n_test, m)`` matrix of expected quality; the evaluation then sweeps λ (quality − λ·cost) to
trace its quality–cost curve. The learned routers are majordome's own quality models (the very
objects the live router uses: prior table, kNN, linear) plus the baselines of the literature,
written from the papers' descriptions:

- ``random``, every single model, ``oracle`` (the best model per prompt, ties to the cheapest) and
  ``cheapest-correct`` (the cheapest model that succeeds, RouterBench's oracle);
- ``mf``: a matrix-factorisation router in the spirit of RouteLLM's MF — P(success | prompt, model)
  = σ(⟨v_model, W·e_prompt⟩ + b_model), learned from the observed (prompt, model) outcomes;
- ``rb-knn`` and ``rb-mlp``: RouterBench's baselines — the mean score of the k nearest training
  prompts, and a one-hidden-layer network on the prompt embedding, predicting each model's score.

The features of a prompt are what the live router computes (static embedding, intent
probabilities, language, length): see :func:`majordome.bench.features.featurize`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from majordome.bench.dataset import Dataset
from majordome.bench.splits import kfold
from majordome.router.outcomes import OutcomeTable
from majordome.router.policy import Policy
from majordome.router.quality import KNNQuality, LinearQuality, PriorQuality, QualityInputs, QualityModel

__all__ = [
    "BenchRouter",
    "CheapestCorrectOracle",
    "MajordomeQualityRouter",
    "MatrixFactorisationRouter",
    "OracleRouter",
    "RouterBenchKNN",
    "RouterBenchMLP",
    "default_routers",
]


class BenchRouter(ABC):
    """Fit on a training set, predict expected quality for each (test prompt, model)."""

    name: str
    learned: bool = True

    @abstractmethod
    def fit(self, train: Dataset, features: QualityInputs) -> None: ...

    @abstractmethod
    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray: ...


class OracleRouter(BenchRouter):
    """Knows the outcomes: predicts the true scores (an upper bound, not a router)."""

    name = "oracle"
    learned = False

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        return None

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        scores: np.ndarray = np.nan_to_num(test.scores, nan=-1.0)
        return scores


class CheapestCorrectOracle(BenchRouter):
    """RouterBench's oracle: the cheapest model that gets the prompt right (score 1), else the
    cheapest model; its predictions make that model win at every λ."""

    name = "cheapest-correct"
    learned = False

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        return None

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        cost = np.nan_to_num(test.cost_usd, nan=np.inf)
        correct = np.nan_to_num(test.scores, nan=0.0) >= 1.0
        masked = np.where(correct, cost, np.inf)
        any_correct = correct.any(axis=1)
        choice = np.where(any_correct, masked.argmin(axis=1), cost.argmin(axis=1))
        out = np.zeros_like(test.scores)
        out[np.arange(test.size), choice] = 1.0
        return out


class MajordomeQualityRouter(BenchRouter):
    """One of majordome's quality models (``prior``, ``knn``, ``linear``), trained as the live
    router trains it."""

    def __init__(self, kind: str, policy: Policy | None = None) -> None:
        self.kind = kind
        self.name = {"prior": "prior-table", "knn": "knn", "linear": "linear"}[kind]
        self.policy = policy or Policy.default()
        self.model: QualityModel | None = None
        self.models: list[str] = []

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        table = OutcomeTable(
            prompt_ids=train.prompt_ids,
            prompts=train.prompts,
            models=train.models,
            scores=train.scores,
            output_tokens=np.full(train.scores.shape, np.nan),
            cost_usd=train.cost_usd,
        )
        prior = PriorQuality(self.policy, [])
        if self.kind == "prior":
            self.model = prior.fit(features, table)
        elif self.kind == "knn":
            self.model = KNNQuality(prior.fit(features, table)).fit(features, table)
        else:
            self.model = LinearQuality(prior.fit(features, table)).fit(features, table)
        self.models = list(train.models)

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        assert self.model is not None
        return self.model.predict(features, test.models)


def _embeddings(features: QualityInputs) -> np.ndarray:
    if features.embeddings is None:
        raise ValueError("this router needs prompt embeddings")
    return features.embeddings.astype(np.float64)


class RouterBenchKNN(BenchRouter):
    """RouterBench's kNN baseline: each model's mean score over the k nearest training prompts
    (cosine similarity of embeddings), uniform weights."""

    def __init__(self, k: int = 40) -> None:
        self.k = k
        self.name = "rb-knn"
        self._train: np.ndarray | None = None
        self._scores: np.ndarray | None = None

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        self._train = _embeddings(features)
        self._scores = train.scores

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        assert self._train is not None and self._scores is not None
        similarity = _embeddings(features) @ self._train.T
        k = min(self.k, similarity.shape[1])
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        neighbours = self._scores[nearest]  # (n_test, k, m)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(neighbours, axis=1)
        fallback = np.nanmean(self._scores, axis=0)
        predicted: np.ndarray = np.where(np.isnan(mean), fallback[None, :], mean)
        return predicted


class _GradientRouter(BenchRouter):
    """A network on the prompt embedding with one sigmoid output per model, trained by mini-batch
    Adam on the binary cross-entropy of the observed outcomes (missing ones masked out), in float32.

    The number of steps is chosen by early stopping on a held-out fold of the *training* data
    (identical prompts kept on one side), then the network is refitted on all of it for that many
    steps: nothing is tuned on the test set, and the same code adapts to a 500-prompt or a
    50 000-prompt dataset.
    """

    learning_rate = 0.01
    batch_size = 1024
    check_every = 10
    patience = 100  # updates without a better held-out loss before training stops

    def __init__(self, max_steps: int, l2: float, seed: int) -> None:
        self.max_steps, self.l2, self.seed = max_steps, l2, seed
        self.steps = max_steps  # chosen by fit()
        self._params: list[np.ndarray] = []

    @abstractmethod
    def _init(self, d: int, m: int, rng: np.random.Generator) -> list[np.ndarray]: ...

    @abstractmethod
    def _logits(self, params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, Any]: ...

    @abstractmethod
    def _grads(self, params: list[np.ndarray], x: np.ndarray, cache: Any, error: np.ndarray) -> list[np.ndarray]: ...

    def _train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        seen: np.ndarray,
        steps: int,
        validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[list[np.ndarray], int]:
        """Adam on mini-batches of ``batch_size`` rows (a fresh seeded permutation per epoch) for
        ``steps`` updates; with ``validation``, stops ``patience`` updates after the best held-out
        loss and returns the update count that reached it."""
        rng = np.random.default_rng(self.seed)
        params = [p.astype(np.float32) for p in self._init(x.shape[1], y.shape[1], rng)]
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        decay = self._l2_mask(params)
        best_loss, best_step = np.inf, steps
        n = len(x)
        order = np.zeros(0, dtype=np.int64)
        for step in range(1, steps + 1):
            if len(order) == 0:
                order = rng.permutation(n)
            rows, order = order[: self.batch_size], order[self.batch_size :]
            batch, batch_seen = x[rows], seen[rows]
            logits, cache = self._logits(params, batch)
            error = np.where(batch_seen, _sigmoid(logits) - y[rows], 0.0) / max(1, int(batch_seen.sum()))
            grads = self._grads(params, batch, cache, error)
            for param, grad, moment, square, l2 in zip(params, grads, moments, squares, decay, strict=True):
                grad += l2 * self.l2 * param
                moment *= 0.9
                moment += 0.1 * grad
                square *= 0.999
                square += 0.001 * grad * grad
                param -= self.learning_rate * (moment / (1 - 0.9**step)) / (np.sqrt(square / (1 - 0.999**step)) + 1e-8)
            if validation is not None and step % self.check_every == 0:
                loss = _bce(self._logits(params, validation[0])[0], validation[1], validation[2])
                if loss < best_loss - 1e-6:
                    best_loss, best_step = loss, step
                elif step - best_step >= self.patience:
                    break
        return params, best_step

    def _l2_mask(self, params: list[np.ndarray]) -> list[float]:
        return [0.0 if p.ndim == 1 else 1.0 for p in params]  # no decay on biases

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        x = _embeddings(features).astype(np.float32)
        y = np.nan_to_num(train.scores).astype(np.float32)
        seen = ~np.isnan(train.scores)
        self.steps = self.max_steps
        if train.size >= 50:
            fit_rows, held_out = kfold(train, 5, self.seed)[0]
            _, self.steps = self._train(
                x[fit_rows], y[fit_rows], seen[fit_rows], self.max_steps, (x[held_out], y[held_out], seen[held_out])
            )
        self._params, _ = self._train(x, y, seen, self.steps)

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        return _sigmoid(self._logits(self._params, _embeddings(features))[0])


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
    return result


def _bce(logits: np.ndarray, y: np.ndarray, seen: np.ndarray) -> float:
    """Mean binary cross-entropy of the observed cells (soft labels allowed)."""
    p = np.clip(_sigmoid(logits), 1e-7, 1 - 1e-7)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(loss[seen].mean()) if seen.any() else 0.0


class RouterBenchMLP(_GradientRouter):
    """RouterBench's MLP baseline: a network with one hidden ReLU layer on the prompt embedding,
    one sigmoid output per model, predicting each model's score."""

    name = "rb-mlp"

    def __init__(self, hidden: int = 64, max_steps: int = 2000, l2: float = 1e-4, seed: int = 0) -> None:
        super().__init__(max_steps, l2, seed)
        self.hidden = hidden

    def _init(self, d: int, m: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [
            rng.normal(0, np.sqrt(2 / d), (d, self.hidden)),
            np.zeros(self.hidden),
            rng.normal(0, np.sqrt(1 / self.hidden), (self.hidden, m)),
            np.zeros(m),
        ]

    def _logits(self, params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, Any]:
        w1, b1, w2, b2 = params
        hidden = np.maximum(0.0, x @ w1 + b1)
        return hidden @ w2 + b2, hidden

    def _grads(self, params: list[np.ndarray], x: np.ndarray, cache: Any, error: np.ndarray) -> list[np.ndarray]:
        _, _, w2, _ = params
        hidden = cache
        grad_hidden = (error @ w2.T) * (hidden > 0)
        return [x.T @ grad_hidden, grad_hidden.sum(0), hidden.T @ error, error.sum(0)]


class MatrixFactorisationRouter(_GradientRouter):
    """In the spirit of RouteLLM's matrix factorisation: P(success | prompt p, model m) =
    σ(⟨v_m, W·e_p⟩ + b_m), with e_p the prompt's embedding, W a learned projection to ``rank``
    dimensions and v_m a learned vector per model, fitted on every observed (p, m) outcome.
    RouteLLM trains it on pairwise preferences between a strong and a weak model; here every
    model's own outcome is the label, which generalises it to any number of models."""

    name = "mf"
    learning_rate = 0.02

    def __init__(self, rank: int = 32, max_steps: int = 2000, l2: float = 1e-4, seed: int = 0) -> None:
        super().__init__(max_steps, l2, seed)
        self.rank = rank

    def _init(self, d: int, m: int, rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.normal(0, 1 / np.sqrt(d), (d, self.rank)), rng.normal(0, 0.1, (m, self.rank)), np.zeros(m)]

    def _logits(self, params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, Any]:
        w, v, b = params
        projected = x @ w
        return projected @ v.T + b, projected

    def _grads(self, params: list[np.ndarray], x: np.ndarray, cache: Any, error: np.ndarray) -> list[np.ndarray]:
        _, v, _ = params
        projected = cache
        return [x.T @ (error @ v), error.T @ projected, error.sum(0)]


def default_routers(names: Sequence[str] | None = None, *, seed: int = 0) -> list[BenchRouter]:
    """The routers a benchmark runs (by name; all by default); ``seed`` seeds the trained networks."""
    routers: dict[str, BenchRouter] = {
        "oracle": OracleRouter(),
        "cheapest-correct": CheapestCorrectOracle(),
        "prior-table": MajordomeQualityRouter("prior"),
        "knn": MajordomeQualityRouter("knn"),
        "linear": MajordomeQualityRouter("linear"),
        "mf": MatrixFactorisationRouter(seed=seed),
        "rb-knn": RouterBenchKNN(),
        "rb-mlp": RouterBenchMLP(seed=seed),
    }
    if names is None:
        return list(routers.values())
    unknown = [n for n in names if n not in routers]
    if unknown:
        raise ValueError(f"unknown routers {unknown}; known: {list(routers)}")
    return [routers[n] for n in names]
