"""The router: understand a request, filter the candidates, score them, decide, explain.

utility(model) = Q(model | request) - lambda * expected cost (USD) - mu * expected latency (s)

Q comes from a :class:`~majordome.router.quality.QualityModel` (the policy's priors unless a
trained model is given); the expected cost from the prompt's tokens, the retrieved context and
the output tokens expected for this intent on this model (:class:`UsageStats`, learned from
recorded usage); the expected latency from the model's typical time to first token and speed.
The eligible models are ranked by utility: the best answers, the next ones are its fallbacks.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

import numpy as np

from majordome._errors import BadRequestError, BudgetExceeded
from majordome._logging import get_logger
from majordome.knowledge.embeddings import Embedder, StaticEmbedder, cache_dir
from majordome.models.catalogue import ModelSpec
from majordome.models.messages import Message, Modality
from majordome.models.tokens import estimate_prompt_tokens, prompt_tokens_upper_bound
from majordome.router.candidates import QuotaRoom, check_candidate, output_reserve, refuse
from majordome.router.decision import CandidateScore, RequestFeatures, RoutingDecision
from majordome.router.intents import INTENTS, IntentClassifier, LLMIntentClassifier, packaged_utterances, split_held_out
from majordome.router.language import LanguageDetector
from majordome.router.outcomes import OutcomeTable
from majordome.router.policy import Policy
from majordome.router.quality import KNNQuality, LinearQuality, PriorQuality, QualityInputs, QualityModel
from majordome.router.text_features import FEATURES_VERSION

__all__ = ["Router", "RouterComponents", "UsageStats", "default_components", "explain"]

_log = get_logger("majordome.router")
_LANGUAGE_HINT = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


class UsageStats:
    """Expected output tokens per (intent, model): an exponentially weighted mean of what was
    recorded, starting from the policy's figure for the intent scaled by the model's own
    verbosity (``expected_output_tokens / 512``: DeepSeek-R1 thinks out loud)."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha
        self._means: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def expected(self, intent: str, spec: ModelSpec, policy: Policy) -> int:
        learned = self._means.get((intent, spec.id))
        if learned is not None:
            return max(1, round(learned))
        base = policy.intents[intent].expected_output_tokens if intent in policy.intents else 300
        return max(1, round(base * spec.expected_output_tokens / 512))

    def observe(self, intent: str, model: str, output_tokens: int) -> None:
        with self._lock:
            key = (intent, model)
            old = self._means.get(key)
            self._means[key] = float(output_tokens) if old is None else old + self.alpha * (output_tokens - old)

    def to_dict(self) -> dict[str, float]:
        return {f"{i}|{m}": v for (i, m), v in self._means.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, float], alpha: float = 0.1) -> UsageStats:
        stats = cls(alpha)
        for key, value in data.items():
            intent, _, model = key.partition("|")
            stats._means[(intent, model)] = float(value)
        return stats


@dataclass(frozen=True)
class RouterComponents:
    """What understanding a request needs: the embedder, the intent classifier, the language detector."""

    embedder: Embedder | None
    classifier: IntentClassifier
    language: LanguageDetector


def _classifier_path(embedder: Embedder | None) -> Path:
    rows = packaged_utterances()
    train, _ = split_held_out(rows)
    import hashlib

    digest = hashlib.sha256(
        (
            "\n".join(f"{r.intent}\t{r.text}" for r in train)
            + f"|{embedder.name if embedder else None}|features {FEATURES_VERSION}"
        ).encode()
    ).hexdigest()[:16]
    return cache_dir() / "intents" / f"{digest}.npz"


@functools.lru_cache(maxsize=1)
def default_components() -> RouterComponents:
    """The packaged classifier on the static embedder (shared by every router in the process).

    The static table and the trained classifier are built once and kept in the cache directory
    (``majordome warmup`` builds them ahead of time). Without the knowledge extra (no
    sentence-transformers), the classifier reads n-grams only, and says so in the logs.
    """
    embedder: Embedder | None = None
    if importlib_util.find_spec("sentence_transformers") is not None:
        embedder = StaticEmbedder.for_model()
    else:
        _log.warning("router.no_embedder", detail="sentence-transformers is not installed: intents from n-grams only")
    path = _classifier_path(embedder)
    classifier: IntentClassifier | None = None
    if path.exists():
        try:
            classifier = IntentClassifier.load(path, embedder)
        except Exception:  # noqa: BLE001 - a stale or broken cache is retrained below
            classifier = None
    if classifier is None:
        train, _ = split_held_out(packaged_utterances())
        classifier = IntentClassifier(INTENTS, embedder).fit(train)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        classifier.save(tmp)
        tmp.replace(path)
    return RouterComponents(embedder, classifier, LanguageDetector())


@dataclass(slots=True)
class _Understood:
    """The text-only part of understanding a request, kept for texts seen again."""

    probs: np.ndarray | None = None
    language: tuple[str, float] | None = None
    embedding: np.ndarray | None = None


def _last_user(messages: Sequence[Message]) -> Message:
    for message in reversed(messages):
        if message.role == "user":
            return message
    return messages[-1]


class Router:
    """Understands requests and decides which model answers them. Thread-safe; the policy and the
    quality model can be swapped while requests are in flight (each keeps what it started with)."""

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        components: RouterComponents | None = None,
        quality: QualityModel | None = None,
        usage: UsageStats | None = None,
        models: Sequence[str] = (),
        memo_size: int = 8192,
    ) -> None:
        self._policy = policy or Policy.default()
        self.components = components or default_components()
        self.usage = usage or UsageStats()
        self._models = list(models)
        self._quality = quality or PriorQuality(self._policy, self._models)
        self.llm: LLMIntentClassifier | None = None
        self._understood: OrderedDict[str, _Understood] = OrderedDict()
        self._memo_size = memo_size
        self._allowed: dict[tuple[int, str], frozenset[str] | None] = {}
        self._memo_lock = threading.Lock()

    # -- configuration -----------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def quality(self) -> QualityModel:
        return self._quality

    def set_policy(self, policy: Policy) -> None:
        """Swap the policy; in-flight requests keep the one they started with. A prior-table
        quality model follows the new priors; a trained one stays."""
        if self._models:
            policy.check_models(self._models)
        quality = PriorQuality(policy, self._models) if isinstance(self._quality, PriorQuality) else self._quality
        self._policy, self._quality = policy, quality
        self._allowed = {}

    def set_quality(self, quality: QualityModel) -> None:
        self._quality = quality

    @property
    def threshold(self) -> float:
        override = self._policy.intent_threshold
        return override if override is not None else self.components.classifier.threshold

    # -- understanding -----------------------------------------------------------------------

    def classify(self, text: str) -> tuple[str, float]:
        """The intent of ``text`` and the classifier's confidence."""
        return self.components.classifier.classify(text)

    def features(
        self,
        messages: Sequence[Message],
        *,
        tenant: str = "",
        job_type: str | None = None,
        intent: str | None = None,
        language: str | None = None,
        tier: str | None = None,
        json_mode: bool = False,
        retrieved_tokens: int = 0,
    ) -> RequestFeatures:
        """Everything the decision needs to know of a request. Hints win over classification."""
        policy = self._policy
        last = _last_user(messages)
        text = last.text.strip()
        modalities: frozenset[Modality] = frozenset().union(*(m.modalities for m in messages))
        embedder = self.components.embedder
        memo = self._memo(text)

        def embed() -> np.ndarray:
            if memo.embedding is None:
                if embedder is None:
                    raise RuntimeError("no embedder")
                memo.embedding = embedder.embed([text or " "])[0]
            return memo.embedding

        probs: np.ndarray | None = None
        if intent is not None:
            if intent not in policy.intents:
                raise BadRequestError(f"unknown intent {intent!r}; intents: {', '.join(policy.intents)}")
            source, confidence = "hint", 1.0
        elif job_type is not None and job_type in policy.job_intents:
            intent, source, confidence = policy.job_intents[job_type], "job_type", 1.0
        elif not text:
            # attachments only: what they are says what is wanted
            intent = "transcription" if Modality.AUDIO in modalities else "vision"
            source, confidence = "attachment", 1.0
        else:
            classifier = self.components.classifier
            if memo.probs is None:
                memo.probs = classifier.probabilities([text], embed()[None, :] if embedder is not None else None)[0]
            probs = memo.probs
            best = int(probs.argmax())
            intent, confidence, source = classifier.intents[best], float(probs[best]), "classifier"
            if classifier.intents != INTENTS:  # a custom taxonomy: quality models read the platform's
                probs = None
        if language is not None:
            hint = language.lower()
            if not _LANGUAGE_HINT.match(hint):
                raise BadRequestError(f"language hint {language!r} is not a language code (e.g. 'fr', 'en')")
            lang, lang_confidence, lang_source = (hint if hint in ("fr", "en") else "other"), 1.0, "hint"
        elif text:
            if memo.language is None:
                memo.language = self.components.language.detect(text)
            lang, lang_confidence = memo.language
            lang_source = "detected"
        else:
            lang, lang_confidence, lang_source = "other", 0.0, "detected"
        try:
            resolved_tier = policy.tier_of(tenant, tier)
        except Exception as exc:
            raise BadRequestError(str(exc)) from exc
        return RequestFeatures(
            modalities=modalities,
            job_type=job_type,
            intent=intent,
            intent_confidence=confidence,
            intent_source=source,
            language=lang,
            language_confidence=lang_confidence,
            language_source=lang_source,
            tier=resolved_tier,
            json_mode=json_mode,
            depth=sum(1 for m in messages if m.role == "user"),
            text=text,
            prompt_tokens_bound=prompt_tokens_upper_bound(messages),
            count_prompt_tokens=lambda: estimate_prompt_tokens(messages),
            embed=embed if embedder is not None else None,
            intent_probs=probs,
            retrieved_tokens=retrieved_tokens,
        )

    def _memo(self, text: str) -> _Understood:
        """What was already worked out for this exact text (an LRU of the last texts seen):
        workers resend the same prompts (retries, templates), and understanding costs more than
        deciding."""
        with self._memo_lock:
            memo = self._understood.get(text)
            if memo is None:
                memo = self._understood[text] = _Understood()
                if len(self._understood) > self._memo_size:
                    self._understood.popitem(last=False)
            else:
                self._understood.move_to_end(text)
            return memo

    def with_intent(self, features: RequestFeatures, intent: str, confidence: float, source: str) -> RequestFeatures:
        """The same features with the intent another classifier (the LLM) settled."""
        return replace(features, intent=intent, intent_confidence=confidence, intent_source=source, intent_probs=None)

    def inputs(self, features: Sequence[RequestFeatures], *, with_embeddings: bool | None = None) -> QualityInputs:
        """Batched quality-model inputs for ``features``."""
        quality = self._quality
        want = with_embeddings
        if want is None:
            want = quality.needs_embedding or (quality.reads_embedding and all(f.embed is not None for f in features))
        probs = np.zeros((len(features), len(INTENTS)))
        for row, f in enumerate(features):
            if f.intent_probs is not None:
                probs[row] = f.intent_probs
            else:
                probs[row, INTENTS.index(f.intent) if f.intent in INTENTS else INTENTS.index("general_help")] = 1.0
        tokens = np.array([math.log1p(self._prompt_estimate(f)) for f in features])
        embeddings = None
        if want and self.components.embedder is not None:
            embeddings = np.stack([f.embedding for f in features]) if features else None
        return QualityInputs(probs, QualityInputs.one_hot_languages([f.language for f in features]), tokens, embeddings)

    def inputs_for_texts(self, texts: Sequence[str]) -> QualityInputs:
        """Quality-model inputs for bare prompts (training and benchmarks): batched classification
        and embedding, languages detected."""
        embedder = self.components.embedder
        embeddings = embedder.embed(texts) if embedder is not None else None
        probs = self.components.classifier.probabilities(texts, embeddings)
        languages = [self.components.language.detect(t)[0] for t in texts]
        tokens = np.array([math.log1p(len(t.encode("utf-8")) * 0.3) for t in texts])
        return QualityInputs(probs, QualityInputs.one_hot_languages(languages), tokens, embeddings)

    @staticmethod
    def _prompt_estimate(features: RequestFeatures) -> int:
        """Prompt tokens for cost: counted when already counted, else about 0.3 token per byte."""
        counted = features._prompt_tokens
        return counted if counted is not None else max(1, int(features.prompt_tokens_bound * 0.3))

    # -- deciding ----------------------------------------------------------------------------

    def decide(
        self,
        features: RequestFeatures,
        specs: Mapping[str, ModelSpec],
        *,
        tenant: str = "",
        requested_output: int | None = None,
        default_output: int = 1024,
        pinned: str | None = None,
        open_circuits: frozenset[str] = frozenset(),
        time_left_s: float | None = None,
        max_cost_usd: float | None = None,
        lambda_usd: float | None = None,
        quality: Sequence[float] | None = None,
        explore: bool = False,
        rooms: Mapping[str, QuotaRoom] | None = None,
    ) -> RoutingDecision:
        """Rank the eligible models by utility. ``pinned`` skips the ranking (that model or a
        typed error). ``quality`` (one value per spec, in order) replaces the quality model's
        prediction, for batch evaluation. ``explore``: when the quality model can sample its
        posterior (the online learner), choose by a sampled quality instead (Thompson sampling);
        the decision is flagged ``explored`` when that changed the choice. The caller decides
        which requests may explore (share of traffic, sensitive intents, budget). ``rooms``: the
        quota of each model's deployment (by model id; none: unlimited): a deployment nearing its
        quota counts as dearer (its cost times the room's multiplier), one that cannot take this
        request now is left out while another can; when none can, the one with room soonest
        goes first and the decision's ``quota_wait_s`` says how long it is expected to wait."""
        policy = self._policy
        lam, mu = policy.weights(tenant, features.tier)
        if lambda_usd is not None:
            lam = lambda_usd
        key = (id(policy), features.tier)
        allowed = self._allowed.get(key, ())
        if allowed == ():  # not cached yet (None is a valid answer: every model)
            allowed = self._allowed[key] = policy.allowed(features.tier)
        rejected: dict[str, str] = {}
        eligible: list[str] = []
        reserves: dict[str, int] = {}
        for model_id, spec in specs.items():
            reserve = reserves[model_id] = output_reserve(spec, requested_output, default_output)
            why = check_candidate(spec, features, reserve)
            if why is None and allowed is not None and model_id not in allowed and model_id != pinned:
                why = f"not allowed for tier {features.tier}"
            if why is None and model_id in open_circuits:
                why = "circuit open (recent failures)"
            if why is None:
                eligible.append(model_id)
            else:
                rejected[model_id] = why
        if pinned is not None:
            if pinned not in specs:
                raise BadRequestError(f"model {pinned} is not deployed (disabled, or not a chat model)")
            if pinned in rejected and not rejected[pinned].startswith("circuit open"):
                refuse(features, {pinned: specs[pinned]}, {pinned: rejected[pinned]}, requested_output, default_output)
            eligible = [pinned]
        if not eligible:
            refuse(features, specs, rejected, requested_output, default_output)

        if quality is None:
            q_values = self._predict(features, eligible)
        else:
            order = list(specs)
            q_values = [quality[order.index(m)] for m in eligible]
        prompt = self._prompt_estimate(features) + features.retrieved_tokens
        scored: list[CandidateScore] = []
        expected = self.usage.expected
        intent = features.intent
        dearer: dict[str, float] = {}
        for model_id, q in zip(eligible, q_values, strict=True):
            spec = specs[model_id]
            out = min(expected(intent, spec, policy), reserves[model_id])
            cost = (prompt * spec.price_input_per_mtok + out * spec.price_output_per_mtok) / 1e6
            latency = spec.ttft_ms / 1000 + out / spec.output_tokens_per_s
            room = rooms.get(model_id) if rooms else None
            weight = lam if room is None else lam * dearer.setdefault(model_id, room.cost_multiplier)
            scored.append(CandidateScore(model_id, q, cost, latency, q - weight * cost - mu * latency, out))
        late_note = ""
        if time_left_s is not None and pinned is None:
            in_time = [c for c in scored if c.latency_s <= time_left_s]
            for c in scored:
                if c.latency_s > time_left_s:
                    rejected[c.model] = f"expected {c.latency_s:.1f} s, more than the {time_left_s:.0f} s left"
            if in_time:
                scored = in_time
            else:  # nobody is expected in time: try the fastest first, the others after
                scored = sorted(scored, key=lambda c: c.latency_s)
                late_note = "; no model is expected within the deadline, so the fastest first"
                for c in scored:
                    rejected.pop(c.model, None)
        if max_cost_usd is not None and pinned is None:
            affordable = [c for c in scored if c.cost_usd <= max_cost_usd]
            for c in scored:
                if c.cost_usd > max_cost_usd:
                    rejected[c.model] = f"expected cost ${c.cost_usd:.6f} over the request's ${max_cost_usd:.6f}"
            if not affordable:
                raise BudgetExceeded(
                    f"no model is expected to answer within ${max_cost_usd:.6f} "
                    f"(cheapest: {min(scored, key=lambda c: c.cost_usd).model} at "
                    f"${min(c.cost_usd for c in scored):.6f})"
                )
            scored = affordable
        quota_wait = 0.0
        if rooms:
            scored, quota_wait = self._within_quota(scored, rooms, rejected, prompt, reserves)
            if quota_wait > 0 and pinned is None:
                late_note += f"; every candidate is at its quota, so the one with room soonest ({quota_wait:.1f} s)"
        if not late_note:
            scored.sort(key=lambda c: c.utility, reverse=True)
        chosen = scored[0]
        explored = False
        sampler = getattr(self._quality, "sample", None)
        can_read = not self._quality.needs_embedding or features.embed is not None
        if explore and pinned is None and not late_note and len(scored) > 1 and sampler is not None and can_read:
            drawn = sampler(self.inputs([features]), [c.model for c in scored])[0]
            utilities = [
                float(q) - lam * dearer.get(c.model, 1.0) * c.cost_usd - mu * c.latency_s
                for q, c in zip(drawn, scored, strict=True)
            ]
            pick = scored[max(range(len(scored)), key=utilities.__getitem__)]
            if pick.model != chosen.model:
                scored.remove(pick)
                scored.insert(0, pick)
                chosen, explored = pick, True
        chain = (
            (chosen.model, *[c.model for c in scored[1 : 1 + policy.max_fallbacks]]) if pinned is None else (pinned,)
        )
        return RoutingDecision(
            chosen=chosen.model,
            chain=chain,
            note=late_note,
            job_type=features.job_type,
            rejected=rejected,
            policy=policy.version if pinned is None else f"{policy.version}/pinned",
            candidates=tuple(scored),
            intent=features.intent,
            intent_confidence=features.intent_confidence,
            intent_source=features.intent_source,
            language=features.language,
            quality_model=self._quality.kind,
            explored=explored,
            quota_wait_s=quota_wait,
        )

    @staticmethod
    def _within_quota(
        scored: list[CandidateScore],
        rooms: Mapping[str, QuotaRoom],
        rejected: dict[str, str],
        prompt: int,
        reserves: Mapping[str, int],
    ) -> tuple[list[CandidateScore], float]:
        """The candidates whose deployment can take the request now (the others rejected); when
        none can, all of them, the one with room soonest first, and its expected wait."""
        waits: dict[str, float] = {}
        for c in scored:
            room = rooms.get(c.model)
            if room is not None:
                wait = room.wait_s(prompt + reserves[c.model])
                if wait > 0:
                    waits[c.model] = wait
        if not waits:
            return scored, 0.0
        free = [c for c in scored if c.model not in waits]
        if free:
            for model_id, wait in waits.items():
                rejected[model_id] = f"deployment at its quota (room in {wait:.1f} s)"
            return free, 0.0
        ordered = sorted(scored, key=lambda c: (waits[c.model], -c.utility))
        return ordered, waits[ordered[0].model]

    def _predict(self, features: RequestFeatures, models: Sequence[str]) -> list[float]:
        quality = self._quality
        if isinstance(quality, PriorQuality):
            return quality.predict_one(features.intent, features.language, models, features.intent_probs)
        if quality.needs_embedding and features.embed is None:
            return [
                float(v)
                for v in PriorQuality(self._policy, list(models)).predict(
                    self.inputs([features], with_embeddings=False), models
                )[0]
            ]
        return [float(v) for v in quality.predict(self.inputs([features]), models)[0]]

    # -- learning ----------------------------------------------------------------------------

    def train_quality(self, kind: str, table: OutcomeTable, **options: Any) -> QualityModel:
        """A ``prior``, ``knn`` or ``linear`` quality model trained on ``table``."""
        inputs = self.inputs_for_texts(table.prompts)
        prior = PriorQuality(self._policy, self._models)
        if kind == "prior":
            return prior.fit(inputs, table, **options)
        if kind == "knn":
            return KNNQuality(prior, **options).fit(inputs, table)
        if kind == "linear":
            return LinearQuality(prior, **options).fit(inputs, table)
        raise BadRequestError(f"unknown quality model kind {kind!r}; kinds: prior, knn, linear")

    def calibrate(
        self,
        samples: Sequence[RequestFeatures],
        specs: Mapping[str, ModelSpec],
        *,
        tenant: str = "",
        target_cost_usd: float | None = None,
        target_share: float | None = None,
        strong: frozenset[str] = frozenset(),
        default_output: int = 1024,
    ) -> float:
        """The lambda that brings the mean expected cost per request down to ``target_cost_usd``,
        or the share of requests routed to ``strong`` models down to ``target_share``, on a sample
        of traffic (as RouteLLM calibrates its threshold). Both fall as lambda grows; the search
        is a bisection on a log scale."""
        if (target_cost_usd is None) == (target_share is None):
            raise BadRequestError("give exactly one of target_cost_usd and target_share")
        if target_share is not None and not strong:
            raise BadRequestError("target_share needs the set of strong models")
        inputs = self.inputs(samples)
        models = list(specs)
        predicted = self._quality.predict(inputs, models)

        def measure(lam: float) -> float:
            total = 0.0
            for row, features in enumerate(samples):
                decision = self.decide(
                    features,
                    specs,
                    tenant=tenant,
                    default_output=default_output,
                    lambda_usd=lam,
                    quality=[float(v) for v in predicted[row]],
                )
                chosen = next(c for c in decision.candidates if c.model == decision.chosen)
                total += chosen.cost_usd if target_cost_usd is not None else float(decision.chosen in strong)
            return total / max(1, len(samples))

        target = target_cost_usd if target_cost_usd is not None else target_share
        assert target is not None
        low, high = 1e-3, 1e6
        if measure(low) <= target:
            return 0.0
        if measure(high) > target:
            return high
        for _ in range(40):
            middle = math.sqrt(low * high)
            if measure(middle) > target:
                low = middle
            else:
                high = middle
        return high


def explain(decision: RoutingDecision) -> str:
    """The decision as a table a person can read."""
    head = (
        f"intent {decision.intent} ({decision.intent_source}, {decision.intent_confidence or 0:.2f}) · "
        f"language {decision.language} · policy {decision.policy} · quality model {decision.quality_model}"
    )
    lines = [head, "", f"{'':2}{'model':<18} {'quality':>8} {'cost $':>10} {'latency s':>10} {'utility':>8}"]
    for c in decision.candidates:
        mark = "→ " if c.model == decision.chosen else ("  " if c.model not in decision.chain else "↳ ")
        lines.append(
            f"{mark}{c.model:<18} {c.quality:>8.3f} {c.cost_usd:>10.6f} {c.latency_s:>10.1f} {c.utility:>8.3f}"
        )
    for model, why in decision.rejected.items():
        lines.append(f"✗ {model:<18} {why}")
    lines += ["", f"why: {decision.reason}", f"chain: {' -> '.join(decision.chain)}"]
    return "\n".join(lines)
