"""The Majordome: route a request, call the model robustly, account for it, answer."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from majordome._config import MajordomeConfig
from majordome._errors import (
    BadRequestError,
    BudgetExceeded,
    CapabilityError,
    ConfigurationError,
    DeadlineExceeded,
    DeploymentAtQuota,
    MajordomeError,
)
from majordome._logging import get_logger
from majordome._types import Answer, Citation, Completed, ReasoningDelta, Request, StreamEvent, TextDelta
from majordome.knowledge.grounding import Grounding, mark_cited
from majordome.models.base import CallContext, Model, ModelRequest, ModelResponse, aclose_stream
from majordome.models.catalogue import Catalogue
from majordome.models.deployments import Deployment, DeploymentSettings, build_deployments
from majordome.models.fallback import FallbackModel
from majordome.models.messages import Message, Usage
from majordome.router.candidates import QuotaRoom, output_reserve
from majordome.router.decision import RequestFeatures, RoutingDecision
from majordome.router.intents import LLMIntentClassifier
from majordome.router.policy import Policy
from majordome.router.quality import PriorQuality, load_quality
from majordome.router.router import Router

if TYPE_CHECKING:
    import numpy as np

    from majordome.cache import CachedAnswer, CacheKey, CachePolicy, ResponseCache
    from majordome.feedback.budgets import BudgetLedger, BudgetStatus, Reservation
    from majordome.feedback.loop import FeedbackLoop, FeedbackResult
    from majordome.knowledge.base import KnowledgeBase
    from majordome.knowledge.embeddings import SentenceTransformerEmbedder
    from majordome.quotas import RateLimiter, Throttle

__all__ = ["Majordome", "ModelInfo"]

_log = get_logger("majordome")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A catalogue entry as this Majordome serves it (for ``majordome models``)."""

    id: str
    display_name: str
    kind: str
    enabled: bool
    served_by: str | None  # None: not served (disabled, or not a chat model)
    substituted: bool
    price_input_per_mtok: float
    price_output_per_mtok: float
    context_window: int | None
    capabilities: tuple[str, ...]


@dataclass(slots=True)
class _Prepared:
    request: Request
    features: RequestFeatures
    decision: RoutingDecision
    context: CallContext
    chain: FallbackModel
    model_request: ModelRequest
    started: float
    citations: tuple[Citation, ...] = ()
    reservation: Reservation | None = None


def _with_system_text(messages: Sequence[Message], text: str) -> list[Message]:
    """``messages`` with ``text`` appended to the system message (or as a first one): one system
    message, which every chat template handles."""
    out = list(messages)
    if out and out[0].role == "system" and isinstance(out[0].content, str):
        out[0] = Message(role="system", content=f"{out[0].content}\n\n{text}")
    else:
        out.insert(0, Message(role="system", content=text))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class _Probe:
    """A request's semantic-cache lookup: its scope, the embedding of its last message, its guard."""

    scope: str
    embedding: np.ndarray
    fingerprint: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _CoolingDown:
    """A deployment whose provider answered 429 with Retry-After: no room until ``until``."""

    until: float
    quota: QuotaRoom | None

    @property
    def cost_multiplier(self) -> float:
        return 1.0 if self.quota is None else self.quota.cost_multiplier

    def wait_s(self, tokens: int) -> float:
        wait = max(0.0, self.until - time.monotonic())
        return wait if self.quota is None else max(wait, self.quota.wait_s(tokens))


class Majordome:
    """Routes each request to a model of the catalogue and calls it robustly.

    ``Majordome()`` works with no set-up: with no endpoint configured, the local llama.cpp model
    serves every chat slot (and each answer says so). ``providers`` replaces the provider of
    catalogue slots (``"*"`` for all), e.g. with :class:`majordome.testing.ScriptedModel`.
    ``env`` defaults to ``os.environ`` and is read here, at construction, never later.
    """

    def __init__(
        self,
        config: MajordomeConfig | None = None,
        *,
        catalogue: Catalogue | None = None,
        providers: Mapping[str, Model] | None = None,
        env: Mapping[str, str] | None = None,
        router: Router | None = None,
        knowledge: KnowledgeBase | None = None,
        feedback: FeedbackLoop | None = None,
        budgets: BudgetLedger | None = None,
        cache: ResponseCache | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        env = dict(os.environ) if env is None else dict(env)
        self.config = config or MajordomeConfig()
        self.catalogue = catalogue or Catalogue.load(self.config.catalogue_file, env)
        self.throttle = self._throttle_from_config()
        settings = DeploymentSettings(
            throttle=self.throttle,
            offline=self.config.offline,
            local_model_path=self.config.local_model_path,
            local_n_ctx=self.config.local_n_ctx,
            local_threads=self.config.local_threads,
            retry=self.config.retry,
            breaker=self.config.breaker,
            max_connections=self.config.max_connections,
        )
        self._deployments: dict[str, Deployment] = build_deployments(self.catalogue, settings, env, providers)
        if not self._deployments:
            raise ConfigurationError("no chat model is enabled in the catalogue")
        self._specs = {model_id: d.spec for model_id, d in self._deployments.items()}
        policy = Policy.load(self.config.policy_file)
        policy.check_models(self.catalogue)
        self.router = router or Router(policy, models=list(self._specs))
        if self.config.quality_model_file is not None:
            self.router.set_quality(load_quality(self.config.quality_model_file))
        self.router.llm = self._llm_classifier(policy)
        self.knowledge = knowledge
        self._owns_knowledge = False
        if knowledge is None and self.config.knowledge_path is not None:
            from majordome.knowledge.base import KnowledgeBase

            self.knowledge = KnowledgeBase.open(self.config.knowledge_path)
            self._owns_knowledge = True
        self.budgets = budgets if budgets is not None else self._budgets_from_config()
        self._owns_budgets = budgets is None and self.budgets is not None
        if self.config.budget_free_model is not None:
            self.catalogue.resolve(self.config.budget_free_model)  # an unknown id is a configuration error now
        self.feedback_loop = feedback
        self._owns_feedback = False
        if feedback is None and self.config.feedback_store is not None:
            from majordome.feedback.loop import FeedbackLoop

            self.feedback_loop = FeedbackLoop.open(
                self.config.feedback_store,
                learner=self.config.learn_from_feedback,
                explore_share=self.config.explore_share,
                sensitive_intents=self.config.sensitive_intents,
                record_prompts=self.config.record_prompts,
            )
            self._owns_feedback = True
        if self.feedback_loop is not None:
            self.feedback_loop.attach(self.router, list(self._specs))
        self._sync_task: asyncio.Future[None] | None = None
        self.cache = cache if cache is not None else self._cache_from_config()
        self.cache_policy: CachePolicy | None = None
        if self.cache is not None:
            from majordome.cache import CachePolicy

            self.cache_policy = CachePolicy()
        self._owns_cache = cache is None and self.cache is not None
        self.rate_limiter = rate_limiter if rate_limiter is not None else self._rate_limiter_from_config()
        self._owns_rate_limiter = rate_limiter is None and self.rate_limiter is not None
        self._cache_writes: set[asyncio.Task[None]] = set()
        self._semantic_embedder: SentenceTransformerEmbedder | None = None
        self._portal = _Portal()

    def _throttle_from_config(self) -> Throttle | None:
        quotas = self.config.deployment_quotas
        if not quotas:
            return None
        from majordome.quotas import DeploymentQuota, InProcessThrottle, RedisThrottle

        by_deployment = {}
        for model_id, quota in quotas.items():
            spec = self.catalogue.resolve(model_id)
            unknown = set(quota) - {"rpm", "tpm"}
            if unknown:
                raise ConfigurationError(f"deployment_quotas.{model_id}: unknown keys {sorted(unknown)} (rpm, tpm)")
            by_deployment[spec.deployment] = DeploymentQuota(rpm=quota.get("rpm"), tpm=quota.get("tpm"))
        if self.config.redis_url:
            return RedisThrottle(by_deployment, url=self.config.redis_url, window_s=self.config.quota_window_s)
        return InProcessThrottle(by_deployment, window_s=self.config.quota_window_s)

    def _cache_from_config(self) -> ResponseCache | None:
        mode = self.config.response_cache
        if mode == "off":
            return None
        if mode == "redis":
            if not self.config.redis_url:
                raise ConfigurationError("response_cache='redis' needs redis_url (MAJORDOME_REDIS_URL)")
            from majordome.cache import RedisCache

            return RedisCache(self.config.redis_url)
        from majordome.cache import InProcessCache

        return InProcessCache()

    def _rate_limiter_from_config(self) -> RateLimiter | None:
        config = self.config
        if config.rate_limit_per_user_per_minute is None and config.rate_limit_per_tenant_per_minute is None:
            return None
        from majordome.quotas import InProcessRateLimiter, RateLimits, RedisRateLimiter

        limits = RateLimits(
            per_user_per_minute=config.rate_limit_per_user_per_minute,
            per_tenant_per_minute=config.rate_limit_per_tenant_per_minute,
        )
        if config.redis_url:
            return RedisRateLimiter(limits, url=config.redis_url)
        return InProcessRateLimiter(limits)

    def _budgets_from_config(self) -> BudgetLedger | None:
        config = self.config
        if config.budget_daily_usd is None and config.budget_monthly_usd is None and not config.budgets:
            return None
        from majordome.feedback.budgets import BudgetCaps, InProcessBudgets, RedisBudgets
        from majordome.feedback.loop import caps_from_mapping

        caps = caps_from_mapping(config.budgets)
        default = BudgetCaps(daily_usd=config.budget_daily_usd, monthly_usd=config.budget_monthly_usd)
        if config.redis_url:
            return RedisBudgets(config.redis_url, caps=caps, default=default)
        return InProcessBudgets(caps=caps, default=default)

    def _llm_classifier(self, policy: Policy) -> LLMIntentClassifier | None:
        """Phi-4-mini as the second opinion on unsure intents: on when the policy says so, or by
        default when Phi-4-mini has its own endpoint (the local stand-in is too small to help, and a
        provider given in code — a test double — is left to the calls it was given for)."""
        deployment = self._deployments.get("phi-4-mini")
        if policy.llm_classifier == "off" or deployment is None:
            return None
        if policy.llm_classifier == "auto" and not deployment.remote:
            return None
        return LLMIntentClassifier(deployment.model, {k: v.description for k, v in policy.intents.items()})

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        providers: Mapping[str, Model] | None = None,
        knowledge: KnowledgeBase | None = None,
        feedback: FeedbackLoop | None = None,
        budgets: BudgetLedger | None = None,
        **overrides: Any,
    ) -> Majordome:
        """Configuration from ``MAJORDOME_CONFIG``, the ``MAJORDOME_*`` variables and ``overrides``."""
        env = dict(os.environ) if env is None else dict(env)
        return cls(
            MajordomeConfig.from_env(env, **overrides),
            providers=providers,
            env=env,
            knowledge=knowledge,
            feedback=feedback,
            budgets=budgets,
        )

    # -- introspection -----------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """Every catalogue entry, with what serves it here."""
        rows = []
        for spec in self.catalogue.values():
            deployment = self._deployments.get(spec.id)
            rows.append(
                ModelInfo(
                    id=spec.id,
                    display_name=spec.display_name,
                    kind=spec.kind,
                    enabled=spec.enabled,
                    served_by=deployment.model.label if deployment else None,
                    substituted=deployment.substituted if deployment else False,
                    price_input_per_mtok=spec.price_input_per_mtok,
                    price_output_per_mtok=spec.price_output_per_mtok,
                    context_window=spec.context_window,
                    capabilities=tuple(sorted(c.value for c in spec.capabilities)),
                )
            )
        return rows

    def route(self, request: Request | dict[str, Any]) -> RoutingDecision:
        """The routing decision for ``request``, without calling any model (and without the LLM
        intent classifier, which :meth:`ask` consults when the first classifier is unsure)."""
        req = Request.parse(request)
        return self._decide(req, self._features(req), time.monotonic() + self._deadline(req))

    def classify(self, text: str) -> tuple[str, float]:
        """The intent of ``text`` (one of the policy's intents) and the classifier's confidence."""
        return self.router.classify(text)

    def set_policy(self, policy: Policy) -> None:
        """Swap the routing policy; requests in flight finish with the one they started with."""
        self.router.set_policy(policy)

    # -- the request path --------------------------------------------------------------------

    def _deadline(self, req: Request) -> float:
        return req.deadline_s or self.config.deadline_for(req.job_type)

    def _features(self, req: Request) -> RequestFeatures:
        return self.router.features(
            req.messages,
            tenant=req.tenant,
            job_type=req.job_type,
            intent=req.intent,
            language=req.language,
            tier=req.tier,
            json_mode=req.json_mode,
        )

    def _decide(
        self,
        req: Request,
        features: RequestFeatures,
        deadline: float,
        *,
        status: BudgetStatus | None = None,
        explore: bool = False,
        pinned_model: str | None = None,
        rooms: Mapping[str, QuotaRoom] | None = None,
    ) -> RoutingDecision:
        pinned = pinned_model or (self.catalogue.resolve(req.model).id if req.model else None)
        max_cost = req.max_cost_usd
        lambda_usd = None
        if status is not None and pinned_model is None:
            from majordome.feedback.loop import budget_pressure

            remaining = status.remaining_usd
            if remaining is not None:
                max_cost = remaining if max_cost is None else min(max_cost, remaining)
            pressure = budget_pressure(status)
            if pressure > 1.0:
                lam, _ = self.router.policy.weights(req.tenant, features.tier)
                lambda_usd = lam * pressure
        open_circuits = frozenset(m for m, d in self._deployments.items() if d.model.breaker.state == "open")
        try:
            return self.router.decide(
                features,
                self._specs,
                tenant=req.tenant,
                requested_output=req.max_output_tokens,
                default_output=self.config.default_max_output_tokens,
                pinned=pinned,
                open_circuits=open_circuits,
                time_left_s=deadline - time.monotonic(),
                max_cost_usd=max_cost,
                lambda_usd=lambda_usd,
                explore=explore,
                rooms=rooms,
            )
        except CapabilityError as error:
            substituted = [d for d in self._deployments.values() if d.substituted]
            if not substituted:
                raise
            raise CapabilityError(
                f"{error}. No endpoint is configured, so the local model ({substituted[0].model.label}) serves "
                "every slot and reads text only; configure the endpoints of the models that can"
            ) from error

    async def _understand(self, request: Request | dict[str, Any]) -> tuple[Request, RequestFeatures, float, float]:
        """The request parsed, rate-limited and understood: (request, features, started, deadline_s)."""
        started = time.monotonic()
        req = Request.parse(request)
        if self.rate_limiter is not None:
            await self.rate_limiter.check(req.tenant, req.user)
        deadline_s = self._deadline(req)
        features = self._features(req)
        llm = self.router.llm
        if (
            llm is not None
            and features.intent_source == "classifier"
            and features.intent_confidence < self.router.threshold
        ):
            verdict = await llm.classify(features.text, trace_id=req.trace_id or "")
            if verdict is not None:
                features = self.router.with_intent(features, verdict[0], verdict[1], "llm")
        return req, features, started, deadline_s

    async def _plan(self, req: Request, features: RequestFeatures, started: float, deadline_s: float) -> _Prepared:
        """Grounding, budget, decision and the call's plan for an understood request."""
        grounding = await self._ground(req, features)
        if grounding is not None:  # the context-window check counts the quoted passages
            features = dataclasses.replace(features, retrieved_tokens=grounding.tokens)
        status = await self.budgets.status(req.tenant) if self.budgets is not None else None
        loop = self.feedback_loop
        if loop is not None and loop.sync_due() and self._sync_task is None:
            # other workers' rewards come in even when this one gets no feedback (off the request path)
            self._sync_task = asyncio.get_running_loop().run_in_executor(None, self._sync_learner, loop)
        explore = loop.may_explore(features.intent, status) if loop is not None else False
        decision, reservation = await self._decide_within_budget(req, features, started + deadline_s, status, explore)
        prepared = self._prepared(req, features, decision, started, deadline_s)
        prepared.reservation = reservation
        if loop is not None and loop.learner is not None:
            self._remember(loop, prepared)
        if grounding is not None:
            prepared.model_request = dataclasses.replace(
                prepared.model_request, messages=_with_system_text(req.messages, grounding.text)
            )
            prepared.citations = grounding.citations
        return prepared

    async def _ground(self, req: Request, features: RequestFeatures) -> Grounding | None:
        """Retrieve from the tenant's knowledge when the request or its intent asks for it."""
        wanted = req.ground if req.ground is not None else features.intent in self.config.grounding_intents
        if not wanted:
            return None
        if self.knowledge is None:
            if req.ground:
                raise BadRequestError("ground=True, but this Majordome has no knowledge base (knowledge_path)")
            return None
        from majordome.knowledge.grounding import build_grounding

        query = features.text.strip()
        if not query:
            return None
        language = features.language if features.language in ("fr", "en") else None
        hits = await self.knowledge.asearch(
            query,
            tenant=req.tenant,
            k=self.config.grounding_k,
            language=language,
            diversity=self.config.grounding_diversity,
            boost=self.config.grounding_boost,
        )
        return build_grounding(hits, budget_tokens=self.config.grounding_budget_tokens)

    def _cache_key(self, req: Request, features: RequestFeatures) -> CacheKey | None:
        """The request's cache key, or None when it must not be cached (the policy says so for
        its intent, or it is grounded: the key does not cover the knowledge base's content)."""
        policy = self.cache_policy
        if self.cache is None or policy is None:
            return None
        grounded = req.ground if req.ground is not None else features.intent in self.config.grounding_intents
        if grounded and self.knowledge is not None:
            return None
        from majordome.cache import Uncacheable

        try:
            return policy.key(req, intent=features.intent, policy_version=self.router.policy.version)
        except Uncacheable:
            return None

    async def _semantic_probe(self, req: Request, features: RequestFeatures) -> _Probe | None:
        """What semantic lookup and its later ``put`` need (scope, embedding, guard), or None
        when it is off or this request may not be answered by a similar one."""
        policy = self.cache_policy
        if self.config.semantic_cache_threshold is None or policy is None:
            return None
        from majordome.cache import Uncacheable, strict_guard_of

        try:
            scope, text = policy.semantic_scope(req, intent=features.intent, policy_version=self.router.policy.version)
        except Uncacheable:
            return None
        if not text:
            return None
        if self.config.semantic_cache_embedder == "router":
            if features.embed is None:
                return None
            embedding = features.embedding  # the router's static table: a few microseconds
        else:
            embedder = self._cache_embedder()
            embedding = (await asyncio.to_thread(embedder.embed, [text]))[0]
        return _Probe(scope, embedding, strict_guard_of(text))

    def _cache_embedder(self) -> SentenceTransformerEmbedder:
        if self._semantic_embedder is None:
            from majordome.knowledge.embeddings import SentenceTransformerEmbedder

            name = self.config.semantic_cache_embedder
            self._semantic_embedder = SentenceTransformerEmbedder(None if name == "default" else name)
        return self._semantic_embedder

    async def _cache_lookup(
        self, req: Request, features: RequestFeatures, key: CacheKey | None, started: float
    ) -> tuple[Answer | None, _Probe | None]:
        """The cached answer to serve (exact first, then similar), and the semantic probe to
        store the new answer with when there is none."""
        cache = self.cache
        if key is None or cache is None:
            return None, None
        hit = await cache.get(key)
        if hit is not None:
            return self._from_cache(req, features, hit, started), None
        probe = await self._semantic_probe(req, features)
        threshold = self.config.semantic_cache_threshold
        if probe is None or threshold is None:
            return None, probe
        similar = await cache.get_similar(
            req.tenant,
            features.intent,
            features.language,
            probe.embedding,
            threshold,
            fingerprint=probe.fingerprint,
            scope=probe.scope,
        )
        if similar is None:
            return None, probe
        return self._from_cache(req, features, similar.answer, started, similarity=similar.score), None

    def _from_cache(
        self,
        req: Request,
        features: RequestFeatures,
        hit: CachedAnswer,
        started: float,
        *,
        similarity: float | None = None,
    ) -> Answer:
        decision = RoutingDecision(
            chosen=hit.model,
            chain=(hit.model,),
            rejected={},
            policy=self.router.policy.version,
            intent=features.intent,
            intent_confidence=features.intent_confidence,
            intent_source=features.intent_source,
            language=features.language,
            job_type=features.job_type,
            note="; served from the response cache"
            + ("" if similarity is None else f" (a similar request, cosine {similarity:.3f})"),
        )
        deployment = self._deployments.get(hit.model)
        return Answer(
            text=hit.text,
            model=hit.model,
            served_by="response cache",
            substituted=deployment.substituted if deployment is not None else False,
            usage=hit.usage,
            cost_usd=0.0,
            latency_ms=(time.monotonic() - started) * 1000,
            trace_id=req.trace_id or uuid.uuid4().hex,
            attempts=(),
            decision=decision,
            cached=True,
            cache_age_s=max(0.0, time.time() - hit.created_at),
            cached_trace_id=hit.trace_id,
            cache_similarity=similarity,
        )

    def _cache_put(
        self, key: CacheKey, req: Request, features: RequestFeatures, answer: Answer, probe: _Probe | None
    ) -> None:
        """Keep a complete answer for the intent's TTL, off the request path."""
        cache, policy = self.cache, self.cache_policy
        if cache is None or policy is None or answer.finish_reason == "length" or not answer.text:
            return
        from majordome.cache import CachedAnswer

        ttl = policy.ttl_for(features.intent)
        entry = CachedAnswer(
            text=answer.text,
            model=answer.model,
            usage=answer.usage,
            trace_id=answer.trace_id,
            created_at=time.time(),
            intent=features.intent,
            language=features.language,
            tenant=req.tenant,
        )
        put = (
            cache.put(key, entry, ttl)
            if probe is None
            else cache.put(key, entry, ttl, embedding=probe.embedding, fingerprint=probe.fingerprint, scope=probe.scope)
        )
        task = asyncio.get_running_loop().create_task(put)
        self._cache_writes.add(task)
        task.add_done_callback(self._cache_writes.discard)

    async def _decide_within_budget(
        self,
        req: Request,
        features: RequestFeatures,
        deadline: float,
        status: BudgetStatus | None,
        explore: bool,
    ) -> tuple[RoutingDecision, Reservation | None]:
        """The decision, and the reservation of its expected cost on the tenant's budget. A
        budget that cannot pay is served by ``budget_free_model`` when one is configured."""
        budgets = self.budgets
        free = self.config.budget_free_model
        free_id = self.catalogue.resolve(free).id if free is not None else None
        rooms = await self._rooms()
        try:
            if status is not None and status.remaining_usd is not None and status.remaining_usd <= 0:
                raise BudgetExceeded(
                    f"tenant {req.tenant!r} has spent its budget", tenant=req.tenant, remaining_usd=status.remaining_usd
                )
            decision = self._decide(req, features, deadline, status=status, explore=explore, rooms=rooms)
            if budgets is None:
                return decision, None
            expected = next((c.cost_usd for c in decision.candidates if c.model == decision.chosen), 0.0)
            return decision, await budgets.reserve(req.tenant, expected)
        except BudgetExceeded:
            if free_id is None or free_id not in self._specs:
                raise
            decision = self._decide(req, features, deadline, pinned_model=free_id, rooms=rooms)
            return decision, None

    async def _rooms(self) -> dict[str, QuotaRoom] | None:
        """What the router weighs of each deployment's load: the room in its quota (when it has
        one), and for one a provider answered 429, the time until its Retry-After."""
        rooms: dict[str, QuotaRoom] = {}
        throttle = self.throttle
        if throttle is not None:
            found = await throttle.rooms(spec.deployment for spec in self._specs.values())
            rooms.update((m, found[s.deployment]) for m, s in self._specs.items() if s.deployment in found)
        now = time.monotonic()
        for model_id, deployment in self._deployments.items():
            if deployment.model.cooling_until > now:
                rooms[model_id] = _CoolingDown(deployment.model.cooling_until, rooms.get(model_id))
        return rooms or None

    @staticmethod
    def _at_quota(error: MajordomeError) -> MajordomeError:
        """``error`` itself, or :class:`~majordome.quotas.QuotaExhausted` when every candidate
        was refused by its deployment's quota (no model was called): the caller may retry later."""
        causes = getattr(error, "causes", ())
        if not causes or not all(isinstance(c, DeploymentAtQuota) for _, c in causes):
            return error
        from majordome.quotas import QuotaExhausted

        soonest = min((c for _, c in causes), key=lambda c: c.retry_after)
        late = "; the deadline passed" if isinstance(error, DeadlineExceeded) else ""
        return QuotaExhausted(
            f"every candidate deployment is at its quota ({', '.join(m for m, _ in causes)}); "
            f"room in {soonest.retry_after:.1f} s{late}",
            deployment=soonest.deployment,
            retry_after_s=soonest.retry_after,
        )

    def _sync_learner(self, loop: FeedbackLoop) -> None:
        try:
            loop.maybe_sync()
        except Exception as exc:  # noqa: BLE001 - a failed sync is retried at the next interval
            _log.warning("feedback.learner_sync_failed", error=type(exc).__name__, detail=str(exc))
        finally:
            self._sync_task = None

    def _remember(self, loop: FeedbackLoop, p: _Prepared) -> None:
        """What feedback on this answer will need: the learner's context and the base quality."""
        from majordome.feedback.learner import context_of

        learner = loop.learner
        assert learner is not None
        inputs = self.router.inputs([p.features])
        context = [round(v, 5) for v in context_of(inputs)[0].tolist()]  # 5 decimals: a smaller record
        if isinstance(learner.base, PriorQuality):  # the table's fast path
            f = p.features
            base = learner.base.predict_one(f.intent, f.language, [p.decision.chosen], f.intent_probs)[0]
        else:
            base = float(learner.base.predict(inputs, [p.decision.chosen])[0, 0])
        loop.remember(p.context.trace_id, p.request.tenant, p.decision.chosen, context, base)

    def _prepared(
        self, req: Request, features: RequestFeatures, decision: RoutingDecision, started: float, deadline_s: float
    ) -> _Prepared:
        context = CallContext(
            trace_id=req.trace_id or uuid.uuid4().hex,
            deadline=started + deadline_s,
            deadline_s=deadline_s,
            # every candidate at its quota: wait for room until the deadline rather than hand over
            quota_wait_s=deadline_s if decision.quota_wait_s > 0 else None,
        )
        chain = FallbackModel([(m, self._deployments[m].model) for m in decision.chain])
        chosen = self._specs[decision.chosen]
        model_request = ModelRequest(
            messages=req.messages,
            max_output_tokens=output_reserve(chosen, req.max_output_tokens, self.config.default_max_output_tokens),
            temperature=req.temperature,
            json_mode=req.json_mode,
            context=context,
        )
        return _Prepared(req, features, decision, context, chain, model_request, started)

    def _answer(self, p: _Prepared, response: ModelResponse) -> Answer:
        deployment = self._deployments[response.model]
        if response.usage is not None:
            self.router.usage.observe(p.features.intent, response.model, response.usage.output_tokens)
        answer = Answer(
            text=response.text,
            model=response.model,
            served_by=response.served_by,
            substituted=deployment.substituted,
            usage=response.usage or Usage(),
            cost_usd=response.cost_usd,
            latency_ms=(time.monotonic() - p.started) * 1000,
            trace_id=p.context.trace_id,
            attempts=tuple(p.context.attempts),
            decision=p.decision,
            reasoning=response.reasoning,
            finish_reason=response.finish_reason,
            citations=mark_cited(p.citations, response.text) if p.citations else (),
        )
        if self.feedback_loop is not None:
            self._record(p, answer, None)
        if _log.isEnabledFor(20):
            _log.info(
                "request.done",
                trace_id=answer.trace_id,
                tenant=p.request.tenant,
                job_type=p.request.job_type,
                model=answer.model,
                served_by=answer.served_by,
                substituted=answer.substituted,
                policy=p.decision.policy,
                intent=p.decision.intent,
                intent_source=p.decision.intent_source,
                language=p.decision.language,
                reason=p.decision.reason,
                attempts=len(answer.attempts),
                input_tokens=answer.usage.input_tokens,
                output_tokens=answer.usage.output_tokens,
                cost_usd=answer.cost_usd,
                latency_ms=round(answer.latency_ms, 2),
                **self._bodies(p.request, answer.text),
            )
        return answer

    def _bodies(self, req: Request, text: str | None) -> dict[str, Any]:
        if not self.config.log_message_bodies:
            return {}
        return {"messages": [m.model_dump() for m in req.messages], "answer_text": text}

    def _record(self, p: _Prepared, answer: Answer | None, error: MajordomeError | None) -> None:
        """Queue the decision and the call for the feedback store (never blocks on I/O; a
        recording problem is logged, never raised into the request)."""
        from majordome.feedback.events import CallEvent, DecisionEvent
        from majordome.guardrails import redact_pii

        loop = self.feedback_loop
        assert loop is not None
        try:
            features: dict[str, Any] = {"prompt_tokens_bound": p.features.prompt_tokens_bound}
            recent = loop.recent(p.context.trace_id)
            if recent is not None and recent.context is not None:
                features["context"] = recent.context
                features["base_quality"] = recent.base_quality
            if loop.record_prompts and answer is not None:
                features["answer"] = redact_pii(answer.text)
            decision = DecisionEvent.from_decision(
                p.decision,
                trace_id=p.context.trace_id,
                tenant=p.request.tenant,
                features=features,
                prompt=redact_pii(p.features.text) if loop.record_prompts else None,
            )
            if answer is not None:
                call = CallEvent.from_answer(answer, tenant=p.request.tenant, job_type=p.request.job_type)
            else:
                attempts = p.context.attempts
                call = CallEvent(
                    trace_id=p.context.trace_id,
                    tenant=p.request.tenant,
                    model=attempts[-1].model if attempts else p.decision.chosen,
                    job_type=p.request.job_type,
                    intent=p.decision.intent,
                    deployment=attempts[-1].deployment if attempts else None,
                    attempts=len(attempts),
                    cost_usd=sum(a.cost_usd for a in attempts),
                    latency_s=time.monotonic() - p.started,
                    status="error",
                    error_class=type(error).__name__ if error is not None else None,
                )
            loop.record(decision, call, answer.text if answer is not None else None)
        except Exception as exc:  # noqa: BLE001 - the answer must not fail because its record did
            _log.warning(
                "feedback.record_failed", trace_id=p.context.trace_id, error=type(exc).__name__, detail=str(exc)
            )

    async def _settle(self, p: _Prepared, cost_usd: float | None) -> None:
        """Settle the request's reservation with what it cost (failed attempts included)."""
        if self.budgets is None or p.reservation is None:
            return
        spent = cost_usd if cost_usd is not None else sum(a.cost_usd for a in p.context.attempts)
        try:
            if spent > 0 or cost_usd is not None:
                await self.budgets.settle(p.reservation, spent)
            else:
                await self.budgets.release(p.reservation)
        except MajordomeError as exc:  # the reservation expires on its own; the answer stands
            _log.warning("budget.settle_failed", trace_id=p.context.trace_id, error=type(exc).__name__)

    def _failed(self, p: _Prepared, error: MajordomeError) -> None:
        if self.feedback_loop is not None:
            self._record(p, None, error)
        if _log.isEnabledFor(30):
            _log.warning(
                "request.failed",
                trace_id=p.context.trace_id,
                tenant=p.request.tenant,
                job_type=p.request.job_type,
                chain=list(p.decision.chain),
                attempts=len(p.context.attempts),
                error=type(error).__name__,
                detail=str(error),
                latency_ms=round((time.monotonic() - p.started) * 1000, 2),
                **self._bodies(p.request, None),
            )

    async def ask(self, request: Request | dict[str, Any]) -> Answer:
        """Route ``request``, call the chosen model (with retries and fallbacks) and answer."""
        req, features, started, deadline_s = await self._understand(request)
        key = self._cache_key(req, features)
        served, probe = await self._cache_lookup(req, features, key, started)
        if served is not None:
            return served
        p = await self._plan(req, features, started, deadline_s)
        try:
            response = await p.chain.complete(p.model_request)
        except MajordomeError as error:
            self._failed(p, error)
            await self._settle(p, None)
            # A request refused at once (every circuit open) never suspended: let the loop run, so
            # a worker retrying in a tight loop cannot starve the calls that would close them.
            await asyncio.sleep(0)
            typed = self._at_quota(error)
            if typed is not error:
                raise typed from error
            raise
        except BaseException:
            await self._settle(p, None)
            raise
        answer = self._answer(p, response)
        await self._settle(p, answer.cost_usd)
        if key is not None:
            self._cache_put(key, req, features, answer, probe)
        return answer

    async def stream(self, request: Request | dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """Like :meth:`ask`, as :class:`TextDelta`/:class:`ReasoningDelta` events, then one
        :class:`Completed` with the whole answer, usage and cost."""
        req, features, started, deadline_s = await self._understand(request)
        key = self._cache_key(req, features)
        served, probe = await self._cache_lookup(req, features, key, started)
        if served is not None:
            yield TextDelta(served.text)
            yield Completed(served)
            return
        p = await self._plan(req, features, started, deadline_s)
        text: list[str] = []
        reasoning: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        try:
            chunks = p.chain.stream(p.model_request)
            try:
                async for chunk in chunks:
                    if chunk.reasoning:
                        reasoning.append(chunk.reasoning)
                        yield ReasoningDelta(chunk.reasoning)
                    if chunk.text:
                        text.append(chunk.text)
                        yield TextDelta(chunk.text)
                    usage = chunk.usage or usage
                    finish = chunk.finish_reason or finish
            finally:  # a reader that stops early stops the model at once (the local model frees its lock)
                await aclose_stream(chunks)
        except MajordomeError as error:
            self._failed(p, error)
            await self._settle(p, None)
            # A request refused at once (every circuit open) never suspended: let the loop run, so
            # a worker retrying in a tight loop cannot starve the calls that would close them.
            await asyncio.sleep(0)
            typed = self._at_quota(error)
            if typed is not error:
                raise typed from error
            raise
        except BaseException:  # the reader stopped early (GeneratorExit) or was cancelled
            await self._settle(p, None)
            raise
        last = p.context.attempts[-1]
        response = ModelResponse(
            text="".join(text),
            served_by=last.served_by,
            finish_reason=finish,
            usage=usage,
            reasoning="".join(reasoning) or None,
            model=last.model,
            cost_usd=last.cost_usd,
        )
        answer = self._answer(p, response)
        await self._settle(p, answer.cost_usd)
        if key is not None:
            self._cache_put(key, req, features, answer, probe)
        yield Completed(answer)

    # -- feedback ------------------------------------------------------------------------------

    def feedback(
        self,
        trace_id: str,
        kind: str,
        value: float | bool | str,
        *,
        draft: str | None = None,
        idempotency_key: str | None = None,
    ) -> FeedbackResult:
        """Feedback on the answer of ``trace_id``: ``rating`` (1-5), ``thumbs`` (up/down),
        ``edit`` (the text actually sent), ``conversion`` (the fan replied or bought), ``revenue``
        (USD). Stored once per ``idempotency_key`` (default: trace, kind and value), mapped to a
        reward and learnt from. Unknown trace → :class:`~majordome.feedback.loop.UnknownTrace`."""
        if self.feedback_loop is None:
            raise ConfigurationError("this Majordome records no feedback: set feedback_store (or pass feedback=)")
        return self.feedback_loop.record_feedback(trace_id, kind, value, draft=draft, idempotency_key=idempotency_key)

    async def afeedback(
        self,
        trace_id: str,
        kind: str,
        value: float | bool | str,
        *,
        draft: str | None = None,
        idempotency_key: str | None = None,
    ) -> FeedbackResult:
        """:meth:`feedback` from async code (the store work runs in a worker thread)."""
        return await asyncio.to_thread(
            lambda: self.feedback(trace_id, kind, value, draft=draft, idempotency_key=idempotency_key)
        )

    # -- synchronous callers -----------------------------------------------------------------

    def ask_sync(self, request: Request | dict[str, Any]) -> Answer:
        """:meth:`ask` for synchronous code (runs on majordome's own event loop thread)."""
        return self._portal.call(lambda: self.ask(request))

    def stream_sync(self, request: Request | dict[str, Any]) -> Iterator[StreamEvent]:
        """:meth:`stream` for synchronous code."""
        return self._portal.iterate(lambda: self.stream(request))

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections opened on the current event loop."""
        for deployment in self._deployments.values():
            await deployment.model.aclose()
        if self._owns_budgets and self.budgets is not None:
            await self.budgets.close()
        if self._cache_writes:
            await asyncio.gather(*self._cache_writes, return_exceptions=True)
        if self._owns_cache and self.cache is not None:
            await self.cache.aclose()
        if self._owns_rate_limiter and self.rate_limiter is not None:
            await self.rate_limiter.aclose()
        if self.throttle is not None:
            await self.throttle.aclose()

    def close(self) -> None:
        """Close everything the synchronous methods opened, and stop their thread (and the
        knowledge base, when this Majordome opened it from its configuration)."""
        self._portal.close(self.aclose)
        if self._owns_knowledge and self.knowledge is not None:
            self.knowledge.close()
        if self._owns_feedback and self.feedback_loop is not None:
            self.feedback_loop.close()
        elif self.feedback_loop is not None:
            self.feedback_loop.writer.flush_sync(timeout=30.0)

    async def __aenter__(self) -> Majordome:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        if self._owns_feedback and self.feedback_loop is not None:
            await asyncio.to_thread(self.feedback_loop.close)

    def __enter__(self) -> Majordome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


class _Portal:
    """An event loop in a daemon thread that runs coroutines for synchronous callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="majordome-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            if threading.current_thread() is self._thread:
                raise RuntimeError("a synchronous majordome method was called from majordome's own event loop")
            return self._loop

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        loop = self._ensure()

        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def iterate(self, make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        loop = self._ensure()
        items: queue.Queue[Any] = queue.Queue()

        async def pump() -> None:
            try:
                async for item in make():
                    items.put(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                items.put(exc)
            else:
                items.put(_END)

        future = asyncio.run_coroutine_threadsafe(pump(), loop)
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()

    def close(self, final: Callable[[], Coroutine[Any, Any, None]]) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(final(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
