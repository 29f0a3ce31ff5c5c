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

import numpy as np

from majordome.bench.dataset import Dataset
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


class RouterBenchMLP(BenchRouter):
    """RouterBench's MLP baseline: a network with one hidden ReLU layer on the prompt embedding,
    one sigmoid output per model, trained on the observed scores (binary cross-entropy, Adam)."""

    def __init__(self, hidden: int = 64, epochs: int = 200, l2: float = 1e-4, seed: int = 0) -> None:
        self.hidden, self.epochs, self.l2, self.seed = hidden, epochs, l2, seed
        self.name = "rb-mlp"
        self._params: list[np.ndarray] = []

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w1, b1, w2, b2 = self._params
        hidden = np.maximum(0.0, x @ w1 + b1)
        return hidden, 1.0 / (1.0 + np.exp(-(hidden @ w2 + b2)))

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        x = _embeddings(features)
        y = np.nan_to_num(train.scores)
        seen = ~np.isnan(train.scores)
        rng = np.random.default_rng(self.seed)
        d, m = x.shape[1], y.shape[1]
        self._params = [
            rng.normal(0, np.sqrt(2 / d), (d, self.hidden)),
            np.zeros(self.hidden),
            rng.normal(0, np.sqrt(1 / self.hidden), (self.hidden, m)),
            np.zeros(m),
        ]
        moments = [np.zeros_like(p) for p in self._params]
        squares = [np.zeros_like(p) for p in self._params]
        for step in range(1, self.epochs + 1):
            hidden, out = self._forward(x)
            error = np.where(seen, out - y, 0.0) / max(1, int(seen.sum()))
            w1, _, w2, _ = self._params
            grad_hidden = (error @ w2.T) * (hidden > 0)
            grads = [
                x.T @ grad_hidden + self.l2 * w1,
                grad_hidden.sum(0),
                hidden.T @ error + self.l2 * w2,
                error.sum(0),
            ]
            for param, grad, moment, square in zip(self._params, grads, moments, squares, strict=True):
                moment *= 0.9
                moment += 0.1 * grad
                square *= 0.999
                square += 0.001 * grad * grad
                param -= 0.01 * (moment / (1 - 0.9**step)) / (np.sqrt(square / (1 - 0.999**step)) + 1e-8)

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        return self._forward(_embeddings(features))[1]


class MatrixFactorisationRouter(BenchRouter):
    """In the spirit of RouteLLM's matrix factorisation: P(success | prompt p, model m) =
    σ(⟨v_m, W·e_p⟩ + b_m), with e_p the prompt's embedding, W a learned projection to ``rank``
    dimensions and v_m a learned vector per model, fitted on every observed (p, m) outcome
    (binary cross-entropy, L2, Adam). RouteLLM trains it on pairwise preferences between a strong
    and a weak model; here every model's own outcome is the label, which generalises it to any
    number of models."""

    def __init__(self, rank: int = 32, epochs: int = 300, l2: float = 1e-4, seed: int = 0) -> None:
        self.rank, self.epochs, self.l2, self.seed = rank, epochs, l2, seed
        self.name = "mf"
        self._w = np.zeros((0, 0))
        self._v = np.zeros((0, 0))
        self._b = np.zeros(0)

    def fit(self, train: Dataset, features: QualityInputs) -> None:
        x = _embeddings(features)
        y = np.nan_to_num(train.scores)
        seen = ~np.isnan(train.scores)
        rng = np.random.default_rng(self.seed)
        d, m = x.shape[1], y.shape[1]
        params = [rng.normal(0, 1 / np.sqrt(d), (d, self.rank)), rng.normal(0, 0.1, (m, self.rank)), np.zeros(m)]
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        for step in range(1, self.epochs + 1):
            w, v, b = params
            projected = x @ w  # (n, r)
            out = 1.0 / (1.0 + np.exp(-(projected @ v.T + b)))
            error = np.where(seen, out - y, 0.0) / max(1, int(seen.sum()))
            grads = [x.T @ (error @ v) + self.l2 * w, error.T @ projected + self.l2 * v, error.sum(0)]
            for param, grad, moment, square in zip(params, grads, moments, squares, strict=True):
                moment *= 0.9
                moment += 0.1 * grad
                square *= 0.999
                square += 0.001 * grad * grad
                param -= 0.02 * (moment / (1 - 0.9**step)) / (np.sqrt(square / (1 - 0.999**step)) + 1e-8)
        self._w, self._v, self._b = params

    def predict(self, test: Dataset, features: QualityInputs) -> np.ndarray:
        logits = (_embeddings(features) @ self._w) @ self._v.T + self._b
        result: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return result


def default_routers(names: Sequence[str] | None = None) -> list[BenchRouter]:
    """The routers a benchmark runs (by name; all by default)."""
    routers: dict[str, BenchRouter] = {
        "oracle": OracleRouter(),
        "cheapest-correct": CheapestCorrectOracle(),
        "prior-table": MajordomeQualityRouter("prior"),
        "knn": MajordomeQualityRouter("knn"),
        "linear": MajordomeQualityRouter("linear"),
        "mf": MatrixFactorisationRouter(),
        "rb-knn": RouterBenchKNN(),
        "rb-mlp": RouterBenchMLP(),
    }
    if names is None:
        return list(routers.values())
    unknown = [n for n in names if n not in routers]
    if unknown:
        raise ValueError(f"unknown routers {unknown}; known: {list(routers)}")
    return [routers[n] for n in names]
