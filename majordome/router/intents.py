"""Intent classification: what a request asks for, with a confidence.

:class:`IntentClassifier` is a multinomial logistic regression over two views of the text: the
sentence embedding (the router's static embedder, distilled from the embedder the knowledge base
shares) and hashed character/word n-grams (which carry French, typos and slang that an English
embedding model reads poorly). It is trained on labelled utterances: the package ships its own,
in English and French (``data/intents.jsonl``), with a fixed held-out part for measurement.
``fit()`` learns the weights and the confidence threshold below which a request is ambiguous;
``evaluate()`` reports precision, recall and F1 per intent and per language.

:class:`LLMIntentClassifier` asks a small model (Phi-4-mini by default) for a JSON verdict when
the first is unsure; its parsing is tolerant and its answers are cached.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from majordome._errors import BadRequestError, ConfigurationError, MajordomeError
from majordome.knowledge.embeddings import Embedder
from majordome.models.base import CallContext, Model, ModelRequest
from majordome.models.messages import Message
from majordome.router._linear import LinearModel
from majordome.router.text_features import DEFAULT_WIDTH, hash_features, hash_one

__all__ = [
    "INTENTS",
    "IntentClassifier",
    "IntentReport",
    "LLMIntentClassifier",
    "LabelledUtterance",
    "load_utterances",
    "packaged_utterances",
    "split_held_out",
]

# The platform's intent ids: part of the public API (hints, reports). More may be added; none renamed.
INTENTS = (
    "fan_reply",
    "sales_message",
    "content_ideas",
    "caption_writing",
    "content_analysis",
    "reasoning",
    "vision",
    "transcription",
    "translation",
    "extraction",
    "general_help",
)
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class LabelledUtterance:
    text: str
    intent: str
    language: str = ""


def load_utterances(path: str | Path) -> list[LabelledUtterance]:
    """Read JSONL lines ``{"text", "intent", "language"}``; a bad line is an error naming it."""
    rows = []
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append(LabelledUtterance(str(data["text"]), str(data["intent"]), str(data.get("language", ""))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{path}, line {number}: not a labelled utterance ({exc})") from exc
    return rows


def packaged_utterances() -> list[LabelledUtterance]:
    """The labelled utterances shipped with majordome (``data/intents_*.jsonl``: English, French)."""
    rows: list[LabelledUtterance] = []
    folder = resources.files("majordome.router").joinpath("data")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("intents") and entry.name.endswith(".jsonl"):
            with resources.as_file(entry) as path:
                rows += load_utterances(path)
    if not rows:
        raise ConfigurationError("the packaged intent utterances are missing (majordome/router/data)")
    return rows


def split_held_out(
    rows: Sequence[LabelledUtterance], share: float = 0.2
) -> tuple[list[LabelledUtterance], list[LabelledUtterance]]:
    """A fixed train/held-out split: each utterance goes by a hash of its text, so the split never
    changes between runs or machines, and is stratified by (intent, language) by construction."""
    train: list[LabelledUtterance] = []
    held: list[LabelledUtterance] = []
    for row in rows:
        digest = int(hashlib.sha256(f"{row.intent}|{row.text}".encode()).hexdigest()[:8], 16)
        (held if digest / 0xFFFFFFFF < share else train).append(row)
    return train, held


@dataclass(frozen=True)
class IntentScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class IntentReport:
    """What :meth:`IntentClassifier.evaluate` measured."""

    accuracy: float
    macro_f1: float
    per_intent: Mapping[str, IntentScores]
    per_language: Mapping[str, tuple[float, float, int]]  # language -> (accuracy, macro-F1, count)
    confusions: Sequence[tuple[str, str, int]]  # (true, predicted, count), most frequent first
    abstained: int = 0

    def table(self) -> str:
        lines = ["| intent | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for intent, s in self.per_intent.items():
            lines.append(f"| {intent} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.support} |")
        lines.append(
            f"| **macro** | | | **{self.macro_f1:.3f}** | {sum(s.support for s in self.per_intent.values())} |"
        )
        for language, (accuracy, f1, count) in self.per_language.items():
            lines.append(f"| language {language} | | accuracy {accuracy:.3f} | {f1:.3f} | {count} |")
        return "\n".join(lines)


def _macro(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[float, dict[str, IntentScores]]:
    scores = {}
    for label in labels:
        tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p == label)
        fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != label and p == label)
        fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = IntentScores(precision, recall, f1, tp + fn)
    present = [s.f1 for s in scores.values() if s.support]
    return (sum(present) / len(present) if present else 0.0), scores


@dataclass
class IntentClassifier:
    """Multinomial logistic regression over [sentence embedding ; hashed n-grams]."""

    intents: tuple[str, ...]
    embedder: Embedder | None
    width: int = DEFAULT_WIDTH
    embedding_weight: float = 1.0
    threshold: float = 0.5
    model: LinearModel | None = None
    trained_on: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _views(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> tuple[np.ndarray | None, Any]:
        if self.embedder is None:
            dense = None
        else:
            vectors = embeddings if embeddings is not None else self.embedder.embed(texts)
            dense = vectors * self.embedding_weight
        return dense, hash_features(texts, self.width)

    def fit(
        self, rows: Sequence[LabelledUtterance], *, l2: float = 1e-4, epochs: int = 250, tune_threshold: bool = True
    ) -> IntentClassifier:
        """Learn the weights from ``rows`` (and, by cross-validation on them, the threshold)."""
        unknown = sorted({r.intent for r in rows} - set(self.intents))
        if unknown:
            raise ConfigurationError(f"training data uses intents outside the taxonomy: {unknown}")
        if not rows:
            raise ConfigurationError("no training data")
        dense, sparse = self._views([r.text for r in rows])
        targets = np.asarray([self.intents.index(r.intent) for r in rows])
        dim = dense.shape[1] if dense is not None else 0
        model = LinearModel.zeros(dim, self.width, len(self.intents))
        model.fit(dense, sparse, targets, l2=l2, epochs=epochs)
        if tune_threshold:
            self.threshold = self._tune_threshold(rows, dense, sparse, targets, l2=l2, epochs=epochs)
        self.model = model
        self.trained_on = hashlib.sha256("\n".join(f"{r.intent}\t{r.text}" for r in rows).encode()).hexdigest()[:16]
        return self

    def _tune_threshold(
        self, rows: Sequence[LabelledUtterance], dense: np.ndarray | None, sparse: Any, targets: np.ndarray, **fit: Any
    ) -> float:
        """The confidence below which predictions are wrong more often than right, from 3-fold
        cross-validated predictions (a model's confidence on its own training data says nothing)."""
        folds = np.arange(len(rows)) % 3
        confidence = np.zeros(len(rows))
        correct = np.zeros(len(rows), dtype=bool)
        for fold in range(3):
            train, test = np.where(folds != fold)[0], np.where(folds == fold)[0]
            model = LinearModel.zeros(dense.shape[1] if dense is not None else 0, self.width, len(self.intents))
            model.fit(dense[train] if dense is not None else None, sparse.take(train), targets[train], **fit)
            proba = model.proba(dense[test] if dense is not None else None, sparse.take(test))
            confidence[test] = proba.max(axis=1)
            correct[test] = proba.argmax(axis=1) == targets[test]
        best, best_threshold = -1.0, 0.5
        for threshold in np.linspace(0.2, 0.9, 15):
            below = confidence < threshold
            # accept the confident ones as they are; count the rest as needing a second opinion
            score = correct[~below].sum() + 0.5 * below.sum() - (~correct[~below]).sum()
            if score > best:
                best, best_threshold = score, float(threshold)
        return best_threshold

    def _require_model(self) -> LinearModel:
        if self.model is None:
            raise ConfigurationError("the intent classifier is not trained: call fit() or load()")
        return self.model

    def probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """``(len(texts), len(intents))`` probabilities (``embeddings``: the texts' vectors, when
        the caller already has them from this classifier's embedder)."""
        if len(texts) == 1:
            return self._probabilities_one(texts[0], embeddings)
        dense, sparse = self._views(texts, embeddings)
        proba: np.ndarray = self._require_model().proba(dense, sparse)
        return proba

    def _probabilities_one(self, text: str, embedding: np.ndarray | None) -> np.ndarray:
        """One text, without batch machinery: the same numbers as the batch path, faster."""
        model = self._require_model()
        logits = model.bias.copy()
        if self.embedder is not None and model.w_dense.size:
            vector = embedding[0] if embedding is not None else self.embedder.embed([text])[0]
            logits += (vector * self.embedding_weight) @ model.w_dense
        columns, values = hash_one(text, self.width)
        if len(columns):
            logits += values @ model.w_sparse[columns]
        exp = np.exp(logits - logits.max())
        result: np.ndarray = (exp / exp.sum()).reshape(1, -1)
        return result

    def classify(self, text: str) -> tuple[str, float]:
        """``(intent, confidence)``; an empty text is a :class:`BadRequestError`."""
        if not text.strip():
            raise BadRequestError("cannot classify an empty text")
        proba = self.probabilities([text])[0]
        best = int(proba.argmax())
        return self.intents[best], float(proba[best])

    def evaluate(self, rows: Sequence[LabelledUtterance]) -> IntentReport:
        """Accuracy, macro-F1, per-intent and per-language scores and the main confusions."""
        proba = self.probabilities([r.text for r in rows])
        predicted = [self.intents[i] for i in proba.argmax(axis=1)]
        truth = [r.intent for r in rows]
        macro, per_intent = _macro(truth, predicted, self.intents)
        per_language = {}
        for language in sorted({r.language for r in rows}):
            idx = [i for i, r in enumerate(rows) if r.language == language]
            lang_truth = [truth[i] for i in idx]
            lang_pred = [predicted[i] for i in idx]
            lang_macro, _ = _macro(lang_truth, lang_pred, self.intents)
            accuracy = sum(t == p for t, p in zip(lang_truth, lang_pred, strict=True)) / len(idx)
            per_language[language or "?"] = (accuracy, lang_macro, len(idx))
        confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
        return IntentReport(
            accuracy=sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(rows) if rows else 0.0,
            macro_f1=macro,
            per_intent=per_intent,
            per_language=per_language,
            confusions=[(t, p, n) for (t, p), n in confusions.most_common(10)],
            abstained=int((proba.max(axis=1) < self.threshold).sum()),
        )

    # -- files -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        model = self._require_model()
        meta = {
            "format": _FORMAT,
            "intents": list(self.intents),
            "width": self.width,
            "embedding_weight": self.embedding_weight,
            "threshold": self.threshold,
            "embedder": self.embedder.name if self.embedder is not None else None,
            "trained_on": self.trained_on,
        }
        np.savez_compressed(
            path,
            w_dense=model.w_dense,
            w_sparse=model.w_sparse.astype(np.float32),
            bias=model.bias,
            meta=np.array(json.dumps(meta)),
        )

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None) -> IntentClassifier:
        """A saved classifier; its embedder must be the one it was trained with."""
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                model = LinearModel(data["w_dense"], data["w_sparse"].astype(np.float64), data["bias"])
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"cannot load an intent classifier from {path}: {exc}") from exc
        if meta.get("format") != _FORMAT:
            raise ConfigurationError(f"{path}: intent classifier format {meta.get('format')}, expected {_FORMAT}")
        wanted = meta.get("embedder")
        if wanted != (embedder.name if embedder is not None else None):
            raise ConfigurationError(
                f"{path} was trained with embedder {wanted!r}, not {embedder.name if embedder else None!r}"
            )
        return cls(
            intents=tuple(meta["intents"]),
            embedder=embedder,
            width=int(meta["width"]),
            embedding_weight=float(meta["embedding_weight"]),
            threshold=float(meta["threshold"]),
            model=model,
            trained_on=str(meta.get("trained_on", "")),
        )


_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


class LLMIntentClassifier:
    """Ask a model for ``{"intent": ..., "confidence": ...}`` under a strict JSON schema (the intent
    an enum of the taxonomy's ids); tolerant of prose around the JSON anyway,
    of case and of separators; answers cached by text. Returns None when the model's answer
    names no known intent, or when the call fails (the caller keeps its own guess)."""

    def __init__(self, model: Model, intents: Mapping[str, str], *, cache_size: int = 4096, timeout_s: float = 5.0):
        self.model = model
        self.intents = dict(intents)
        self.timeout_s = timeout_s
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._cache_size = cache_size
        self.schema = {
            "type": "object",
            "properties": {
                "intent": {"type": "string", "enum": list(self.intents)},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["intent", "confidence"],
            "additionalProperties": False,
        }
        catalogue = "\n".join(f"- {name}: {description}" for name, description in self.intents.items())
        self._system = (
            "You classify requests sent to a creator platform's assistant. The intents are:\n"
            f"{catalogue}\n"
            'Answer with one JSON object and nothing else: {"intent": "<one id from the list>", '
            '"confidence": <a number between 0 and 1>}'
        )

    def parse(self, answer: str) -> tuple[str, float] | None:
        """The intent and confidence in a model's answer, or None."""
        by_key = {re.sub(r"[\s\-_]+", "", name.lower()): name for name in self.intents}
        for match in _JSON_OBJECT.findall(answer):
            try:
                data = json.loads(match)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            raw = str(data.get("intent", ""))
            name = by_key.get(re.sub(r"[\s\-_]+", "", raw.lower()))
            if name is None:
                continue
            try:
                confidence = min(1.0, max(0.0, float(data.get("confidence", 0.7))))
            except (TypeError, ValueError):
                confidence = 0.7
            return name, confidence
        words = re.findall(r"[a-z_]+", answer.lower())  # no JSON: a bare intent id will do
        found = [w for w in words if w in self.intents]
        return (found[0], 0.6) if len(set(found)) == 1 else None

    async def classify(self, text: str, *, trace_id: str = "") -> tuple[str, float] | None:
        key = text.strip()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        import time

        context = CallContext(trace_id=trace_id, deadline=time.monotonic() + self.timeout_s, deadline_s=self.timeout_s)
        request = ModelRequest(
            messages=[Message(role="system", content=self._system), Message(role="user", content=key[:4000])],
            max_output_tokens=40,
            temperature=0.0,
            json_mode=True,
            json_schema=self.schema,
            context=context,
        )
        try:
            response = await self.model.complete(request)
        except MajordomeError:
            return None
        verdict = self.parse(response.text)
        if verdict is not None:
            self._cache[key] = verdict
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verdict
