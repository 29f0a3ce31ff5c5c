"""Quality models: Q(model | request) in [0, 1], one interface, three implementations.

- :class:`PriorQuality`: a table per intent and model (the policy's priors: the platform's old
  rules), plus a bonus per language; weighted by the intent's probabilities when the intent was
  classified. ``fit`` turns recorded outcomes into posterior means (shrunk to the priors).
- :class:`KNNQuality`: the scores the models got on the *k* nearest recorded prompts (cosine
  similarity of embeddings), shrunk towards a fallback model where neighbours are few.
- :class:`LinearQuality`: one logistic regression per model over the request's features
  (embedding, intent probabilities, language, log prompt length).

The benchmarks train and evaluate these very objects, and the feedback learner updates them.
Models a quality model never saw fall back to its ``fallback`` (by default the priors).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from majordome._errors import ConfigurationError
from majordome.router._linear import LinearModel
from majordome.router.intents import INTENTS
from majordome.router.outcomes import OutcomeTable
from majordome.router.policy import Policy

__all__ = ["LANGUAGES", "KNNQuality", "LinearQuality", "PriorQuality", "QualityInputs", "QualityModel", "load_quality"]

LANGUAGES = ("fr", "en", "other")
_FORMAT = 1


@dataclass(frozen=True)
class QualityInputs:
    """Batched request features, as quality models read them."""

    intent_probs: np.ndarray  # (n, len(INTENTS))
    languages: np.ndarray  # (n, 3) one-hot over LANGUAGES
    log_tokens: np.ndarray  # (n,)
    embeddings: np.ndarray | None = None  # (n, d), L2-normalised

    @property
    def rows(self) -> int:
        return int(self.intent_probs.shape[0])

    def vector(self) -> np.ndarray:
        parts = [self.intent_probs, self.languages, (self.log_tokens / 10.0)[:, None]]
        if self.embeddings is not None:
            parts.insert(0, self.embeddings)
        return np.hstack(parts)

    def take(self, rows: Sequence[int] | np.ndarray) -> QualityInputs:
        index = np.asarray(rows, dtype=np.int64)
        return QualityInputs(
            self.intent_probs[index],
            self.languages[index],
            self.log_tokens[index],
            None if self.embeddings is None else self.embeddings[index],
        )

    @staticmethod
    def one_hot_languages(languages: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(languages), len(LANGUAGES)))
        for row, language in enumerate(languages):
            out[row, LANGUAGES.index(language) if language in LANGUAGES else 2] = 1.0
        return out


class QualityModel(ABC):
    """Predicts Q(model | request) in [0, 1] for a batch of requests and a list of models."""

    kind: ClassVar[str]
    needs_embedding: bool = False
    reads_embedding: bool = False  # uses the embedding when the request has one, works without

    @abstractmethod
    def predict(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        """``(inputs.rows, len(models))`` quality estimates."""

    @abstractmethod
    def fit(self, inputs: QualityInputs, table: OutcomeTable) -> QualityModel:
        """Learn from recorded outcomes (``table`` rows align with ``inputs`` rows)."""

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(metadata, arrays) to save."""

    def save(self, path: str | Path) -> None:
        meta, arrays = self._state()
        payload: dict[str, Any] = {
            "meta": np.array(json.dumps({"format": _FORMAT, "kind": self.kind, **meta})),
            **arrays,
        }
        np.savez_compressed(path, **payload)


class PriorQuality(QualityModel):
    """Q = sum over intents of p(intent) * table[intent, model], plus the language's bonus."""

    kind = "prior"

    def __init__(self, policy: Policy, models: Sequence[str]) -> None:
        self.models = list(models)
        self.default = policy.default_prior  # Q of a model the table does not know
        self.table = np.array([[policy.prior(intent, m) for m in self.models] for intent in INTENTS]).reshape(
            len(INTENTS), len(self.models)
        )
        self.bonus = np.array(
            [[policy.language_bonus.get(language, {}).get(m, 0.0) for m in self.models] for language in LANGUAGES]
        ).reshape(len(LANGUAGES), len(self.models))
        self.counts = np.zeros_like(self.table)  # outcomes seen per (intent, model), after fit
        self._column = {m: j for j, m in enumerate(self.models)}
        self._rows: list[list[float]] | None = None  # the table as lists, for predict_one
        self._bonus_rows: list[list[float]] = []

    def _columns(self, models: Sequence[str], default: float) -> tuple[np.ndarray, np.ndarray]:
        table = np.full((len(INTENTS), len(models)), default)
        bonus = np.zeros((len(LANGUAGES), len(models)))
        for k, m in enumerate(models):
            j = self._column.get(m)
            if j is not None:
                table[:, k] = self.table[:, j]
                bonus[:, k] = self.bonus[:, j]
        return table, bonus

    def predict(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        table, bonus = self._columns(models, self.default)
        result: np.ndarray = np.clip(inputs.intent_probs @ table + inputs.languages @ bonus, 0.0, 1.0)
        return result

    def predict_one(
        self, intent: str, language: str, models: Sequence[str], intent_probs: np.ndarray | None = None
    ) -> list[float]:
        """The hot path for one request: with the intent known (or its probabilities), a few
        lookups and one small product, no batch arrays."""
        if self._rows is None:
            self._rows, self._bonus_rows = self.table.tolist(), self.bonus.tolist()
        bonus = self._bonus_rows[LANGUAGES.index(language) if language in LANGUAGES else 2]
        columns = [self._column.get(m) for m in models]
        if intent_probs is not None:
            known = [j for j in columns if j is not None]
            mixed = (intent_probs @ self.table[:, known]).tolist() if known else []
            values = dict(zip(known, mixed, strict=True))
        else:
            row = self._rows[INTENTS.index(intent)]
            values = {j: row[j] for j in columns if j is not None}
        out = []
        for j in columns:
            q = values[j] + bonus[j] if j is not None else self.default
            out.append(min(1.0, max(0.0, q)))
        return out

    def fit(self, inputs: QualityInputs, table: OutcomeTable, *, pseudo_count: float = 20.0) -> PriorQuality:
        """Posterior mean per (intent, model): ``(c * prior + sum p * score) / (c + sum p)``."""
        for j_out, model in enumerate(table.models):
            if model not in self._column:
                self._column[model] = len(self.models)
                self.models.append(model)
                self.table = np.hstack([self.table, np.full((len(INTENTS), 1), self.default)])
                self.bonus = np.hstack([self.bonus, np.zeros((len(LANGUAGES), 1))])
                self.counts = np.hstack([self.counts, np.zeros((len(INTENTS), 1))])
            j = self._column[model]
            scores = table.scores[:, j_out]
            seen = ~np.isnan(scores)
            weight = inputs.intent_probs[seen].sum(axis=0)
            total = inputs.intent_probs[seen].T @ scores[seen]
            prior = self.table[:, j]
            self.table[:, j] = (pseudo_count * prior + total) / (pseudo_count + weight)
            self.counts[:, j] += weight
        self._rows = None
        return self

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"models": self.models, "default": self.default}, {
            "table": self.table,
            "bonus": self.bonus,
            "counts": self.counts,
        }

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: Any) -> PriorQuality:
        model = cls.__new__(cls)
        model.models = list(meta["models"])
        model.default = float(meta["default"])
        model.table, model.bonus, model.counts = arrays["table"], arrays["bonus"], arrays["counts"]
        model._column = {m: j for j, m in enumerate(model.models)}
        model._rows, model._bonus_rows = None, []
        return model


class KNNQuality(QualityModel):
    """The similarity-weighted mean score of the ``k`` nearest recorded prompts, per model,
    shrunk towards ``fallback`` with the weight of ``shrink`` neighbours."""

    kind = "knn"
    needs_embedding = True

    def __init__(self, fallback: QualityModel, *, k: int = 20, shrink: float = 1.0) -> None:
        self.fallback = fallback
        self.k = k
        self.shrink = shrink
        self.models: list[str] = []
        self.embeddings = np.zeros((0, 0), dtype=np.float32)
        self.scores = np.zeros((0, 0))

    def fit(self, inputs: QualityInputs, table: OutcomeTable) -> KNNQuality:
        if inputs.embeddings is None:
            raise ConfigurationError("kNN quality needs embeddings")
        self.models = list(table.models)
        self.embeddings = inputs.embeddings.astype(np.float32)
        self.scores = table.scores.copy()
        return self

    def predict(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        prior = self.fallback.predict(inputs, models)
        if inputs.embeddings is None or not len(self.embeddings):
            return prior
        similarity = inputs.embeddings.astype(np.float32) @ self.embeddings.T  # (q, n)
        k = min(self.k, similarity.shape[1])
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None)  # (q, k)
        out = prior.copy()
        for col, model in enumerate(models):
            if model not in self.models:
                continue
            scores = self.scores[:, self.models.index(model)][nearest]  # (q, k)
            known = ~np.isnan(scores)
            w = np.where(known, weights, 0.0)
            total = (w * np.nan_to_num(scores)).sum(axis=1)
            out[:, col] = (total + self.shrink * prior[:, col]) / (w.sum(axis=1) + self.shrink)
        return out

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.fallback._state()
        return (
            {
                "models": self.models,
                "k": self.k,
                "shrink": self.shrink,
                "fallback": {"kind": self.fallback.kind, **meta},
            },
            {"embeddings": self.embeddings, "scores": self.scores, **{f"fallback_{n}": a for n, a in arrays.items()}},
        )


class LinearQuality(QualityModel):
    """P(good answer) per model: a logistic regression on the request's feature vector."""

    kind = "linear"
    needs_embedding = True

    def __init__(self, fallback: QualityModel, *, l2: float = 1e-3, epochs: int = 300) -> None:
        self.fallback = fallback
        self.l2 = l2
        self.epochs = epochs
        self.models: list[str] = []
        self.weights = np.zeros((0, 0))
        self.bias = np.zeros(0)

    def fit(self, inputs: QualityInputs, table: OutcomeTable) -> LinearQuality:
        if inputs.embeddings is None:
            raise ConfigurationError("linear quality needs embeddings")
        features = inputs.vector()
        self.models = list(table.models)
        self.weights = np.zeros((features.shape[1], len(self.models)))
        self.bias = np.zeros(len(self.models))
        for j in range(len(self.models)):
            seen = ~np.isnan(table.scores[:, j])
            if not seen.any():
                continue
            model = LinearModel.zeros(features.shape[1], 0, 1)
            model.fit(features[seen], None, table.scores[seen, j], l2=self.l2, epochs=self.epochs, learning_rate=0.05)
            self.weights[:, j] = model.w_dense[:, 0]
            self.bias[j] = model.bias[0]
        return self

    def predict(self, inputs: QualityInputs, models: Sequence[str]) -> np.ndarray:
        out = self.fallback.predict(inputs, models)
        if inputs.embeddings is None or not self.models:
            return out
        logits = inputs.vector() @ self.weights + self.bias
        predicted = 1.0 / (1.0 + np.exp(-logits))
        for col, model in enumerate(models):
            if model in self.models:
                out[:, col] = predicted[:, self.models.index(model)]
        return out

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.fallback._state()
        return (
            {"models": self.models, "l2": self.l2, "fallback": {"kind": self.fallback.kind, **meta}},
            {"weights": self.weights, "bias": self.bias, **{f"fallback_{n}": a for n, a in arrays.items()}},
        )


def load_quality(path: str | Path) -> QualityModel:
    """A quality model saved with :meth:`QualityModel.save`."""
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load a quality model from {path}: {exc}") from exc
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a majordome quality model") from exc
    if meta.get("format") != _FORMAT:
        raise ConfigurationError(f"{path}: quality model format {meta.get('format')}, expected {_FORMAT}")
    kind = meta.get("kind")
    if kind == "prior":
        return PriorQuality._from_state(meta, arrays)
    fallback_meta = meta.get("fallback", {})
    fallback_arrays = {n.removeprefix("fallback_"): a for n, a in arrays.items() if n.startswith("fallback_")}
    if fallback_meta.get("kind") != "prior":
        raise ConfigurationError(f"{path}: unsupported fallback {fallback_meta.get('kind')!r}")
    fallback = PriorQuality._from_state(fallback_meta, fallback_arrays)
    if kind == "knn":
        knn = KNNQuality(fallback, k=int(meta["k"]), shrink=float(meta["shrink"]))
        knn.models, knn.embeddings, knn.scores = list(meta["models"]), arrays["embeddings"], arrays["scores"]
        return knn
    if kind == "linear":
        linear = LinearQuality(fallback, l2=float(meta["l2"]))
        linear.models, linear.weights, linear.bias = list(meta["models"]), arrays["weights"], arrays["bias"]
        return linear
    raise ConfigurationError(f"{path}: unknown quality model kind {kind!r}")
