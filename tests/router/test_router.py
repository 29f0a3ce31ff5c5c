from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from majordome import (
    BadRequestError,
    BudgetExceeded,
    CapabilityError,
    Catalogue,
    ContextWindowExceeded,
    Majordome,
    MajordomeConfig,
    Message,
    RetryPolicy,
)
from majordome.quotas import Room
from majordome.router import Policy, Router, explain
from majordome.testing import Reply, ScriptedModel

CATALOGUE = Catalogue.default()
SPECS = {k: v for k, v in CATALOGUE.items() if v.kind == "chat"}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(models=list(SPECS))


def msgs(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def decide(router: Router, text: str = "hello", specs: Any = SPECS, **kwargs: Any) -> Any:
    feature_args = {
        k: kwargs.pop(k) for k in ("intent", "language", "job_type", "tier", "tenant", "json_mode") if k in kwargs
    }
    features = router.features(msgs(text), **feature_args)
    return router.decide(features, specs, tenant=feature_args.get("tenant", ""), **kwargs)


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        ({"intent": "reasoning", "language": "en"}, "deepseek-r1"),
        ({"intent": "fan_reply", "language": "en"}, "llama-3.3-70b"),
        ({"job_type": "chat.suggest", "language": "en"}, "llama-3.3-70b"),
        ({"intent": "caption_writing", "language": "en"}, "llama-3.3-70b"),
        ({"intent": "general_help", "language": "fr"}, "mistral-large"),
        ({"intent": "extraction", "language": "en"}, "phi-4-mini"),
        ({"intent": "general_help", "language": "en"}, "deepseek-v3"),
        ({"intent": "translation", "language": "en"}, "mistral-large"),
    ],
)
def test_the_priors_reproduce_the_platforms_rules(router: Router, hints: dict[str, str], expected: str) -> None:
    decision = decide(router, **hints)
    assert decision.chosen == expected, explain(decision)
    assert decision.chain[0] == expected and len(decision.chain) == 3  # chosen + max_fallbacks
    ranked = [c.utility for c in decision.candidates]
    assert ranked == sorted(ranked, reverse=True)
    assert decision.intent_source in ("hint", "job_type") and decision.policy == "seed-priors-v1"


def test_classified_intent_language_and_scores_are_explained(router: Router) -> None:
    decision = decide(router, "Can you solve this: if I grow 7% a month from 1,200 subscribers, how many in a year?")
    assert decision.intent == "reasoning" and decision.intent_source == "classifier"
    assert 0 < decision.intent_confidence <= 1
    assert decision.language == "en"
    assert decision.chosen == "deepseek-r1"
    chosen = decision.candidates[0]
    assert chosen.model == "deepseek-r1" and chosen.cost_usd > 0 and chosen.latency_s > 0
    table = explain(decision)
    assert "deepseek-r1" in table and "utility" in table and "why:" in table


def test_french_requests_are_detected(router: Router) -> None:
    decision = decide(router, "Salut, tu peux m'expliquer comment marche la plateforme pour les paiements ?")
    assert decision.language == "fr"


def test_an_image_without_text_is_a_vision_request() -> None:
    router = Router(models=list(SPECS))
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
    features = router.features([Message.model_validate({"role": "user", "content": [image]})])
    assert features.intent == "vision" and features.intent_source == "attachment"
    decision = router.decide(features, SPECS)
    assert decision.chosen == "phi-4-multimodal"
    assert decision.rejected["deepseek-v3"] == "cannot read image input"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"intent": "fan_replies"}, "unknown intent 'fan_replies'"),
        ({"language": "french"}, "language hint"),
        ({"tier": "gold"}, "unknown tier 'gold'"),
    ],
)
def test_unknown_hints_are_bad_requests(router: Router, kwargs: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        router.features(msgs("hi"), **kwargs)


def test_tier_restricts_and_weighs_cost(router: Router) -> None:
    free = decide(router, intent="reasoning", language="en", tier="free")
    assert set(free.chain) <= {"phi-4-mini", "phi-4-multimodal", "llama-3.3-70b"}
    assert free.rejected["deepseek-r1"] == "not allowed for tier free"


def test_open_circuits_are_left_out(router: Router) -> None:
    decision = decide(router, intent="reasoning", language="en", open_circuits=frozenset({"deepseek-r1"}))
    assert decision.chosen == "deepseek-v3" and "circuit open" in decision.rejected["deepseek-r1"]


def test_a_deployment_that_cannot_take_the_request_now_is_left_out(router: Router) -> None:
    full = Room(requests=(10.0, 10.0, 1.5), tokens=(10_000.0, 10_000.0, 1_500.0))
    drained = Room(requests=(0.2, 10.0, 1.5), tokens=(10_000.0, 10_000.0, 1_500.0))
    decision = decide(router, intent="reasoning", language="en", rooms={"deepseek-r1": drained, "deepseek-v3": full})
    assert decision.chosen == "deepseek-v3"
    assert decision.rejected["deepseek-r1"].startswith("deployment at its quota (room in 0.5 s)")
    assert decision.quota_wait_s == 0.0


def test_a_deployment_nearing_its_quota_counts_as_dearer(router: Router) -> None:
    plain = decide(router, intent="reasoning", language="en")
    near = Room(requests=(9.0, 10.0, 1.5), tokens=(10_000.0, 10_000.0, 1_500.0), cost_multiplier=4.0)
    dearer = decide(router, intent="reasoning", language="en", rooms={"deepseek-r1": near})
    before = {c.model: c for c in plain.candidates}["deepseek-r1"]
    after = {c.model: c for c in dearer.candidates}["deepseek-r1"]
    assert after.cost_usd == before.cost_usd  # the price is what it is; the utility weighs it 4 times
    lam, _ = router.policy.weights("", "standard")
    assert after.utility == pytest.approx(before.utility - 3 * lam * before.cost_usd)


def test_when_every_deployment_is_at_its_quota_the_one_with_room_soonest_goes_first(router: Router) -> None:
    rooms = {
        model: Room(requests=(level, 10.0, 1.0), tokens=None)
        for model, level in zip(SPECS, (0.1, 0.5, 0.0, 0.2, 0.3, 0.4, 0.6, 0.7), strict=False)
    }
    decision = decide(router, intent="reasoning", language="en", rooms=rooms)
    soonest = max(rooms, key=lambda m: rooms[m].requests[0])  # type: ignore[index]
    assert decision.chosen == soonest
    assert decision.quota_wait_s == pytest.approx(1.0 - rooms[soonest].requests[0])  # type: ignore[index]
    assert "at its quota" in decision.reason
    pinned = decide(router, intent="reasoning", language="en", pinned="deepseek-r1", rooms=rooms)
    assert pinned.chosen == "deepseek-r1" and pinned.quota_wait_s == pytest.approx(
        1.0 - rooms["deepseek-r1"].requests[0]
    )  # type: ignore[index]


def test_the_deadline_leaves_out_slow_models(router: Router) -> None:
    decision = decide(router, intent="reasoning", language="en", time_left_s=15.0)
    assert decision.chosen != "deepseek-r1"
    assert "more than the 15 s left" in decision.rejected["deepseek-r1"]
    hopeless = decide(router, intent="reasoning", language="en", time_left_s=0.5)
    assert "fastest first" in hopeless.reason
    latencies = [c.latency_s for c in hopeless.candidates]
    assert latencies == sorted(latencies)


def test_max_cost_leaves_out_expensive_models_or_refuses(router: Router) -> None:
    decision = decide(router, intent="reasoning", language="en", max_cost_usd=0.001)
    assert decision.chosen != "deepseek-r1" and all(c.cost_usd <= 0.001 for c in decision.candidates)
    with pytest.raises(BudgetExceeded, match="no model is expected to answer within"):
        decide(router, intent="reasoning", language="en", max_cost_usd=1e-9)


def test_a_long_prompt_goes_to_a_longer_window_or_is_refused_with_numbers(router: Router) -> None:
    small = {k: v.model_copy(update={"context_window": 8000}) for k, v in SPECS.items()}
    small["mistral-large"] = SPECS["mistral-large"]
    decision = decide(router, "word " * 20000, small, intent="fan_reply", language="en")
    assert decision.chosen == "mistral-large" and decision.chain == ("mistral-large",)
    tiny = {k: v.model_copy(update={"context_window": 2000}) for k, v in SPECS.items()}
    with pytest.raises(ContextWindowExceeded) as info:
        decide(router, "word " * 100_000, tiny, intent="fan_reply", language="en")
    assert info.value.largest_window == 2000 and info.value.prompt_tokens > 100_000


def test_pinned_models_skip_ranking_but_not_capabilities(router: Router) -> None:
    decision = decide(router, intent="reasoning", language="en", pinned="phi-4-mini")
    assert decision.chain == ("phi-4-mini",) and decision.policy.endswith("/pinned")
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
    features = router.features(
        [Message.model_validate({"role": "user", "content": [{"type": "text", "text": "hi"}, image]})]
    )
    with pytest.raises(CapabilityError, match="cannot read image input"):
        router.decide(features, SPECS, pinned="deepseek-v3")


def test_usage_learned_from_answers_changes_expected_cost() -> None:
    router = Router(models=list(SPECS))
    before = decide(router, intent="fan_reply", language="en")
    cost_before = next(c.cost_usd for c in before.candidates if c.model == "llama-3.3-70b")
    for _ in range(50):
        router.usage.observe("fan_reply", "llama-3.3-70b", 4000)
    after = decide(router, intent="fan_reply", language="en")
    cost_after = next(c.cost_usd for c in after.candidates if c.model == "llama-3.3-70b")
    assert cost_after > 5 * cost_before


def test_calibration_finds_lambda_for_a_target(router: Router) -> None:
    texts = [
        "solve 12*7 step by step",
        "reply to this fan: you are great!",
        "translate my bio into Spanish",
        "what should I post this week?",
        "tag these messages as spam or not",
        "why did my views drop?",
    ] * 3
    samples = [router.features(msgs(t)) for t in texts]
    free_spend = sum(
        next(c.cost_usd for c in router.decide(f, SPECS, lambda_usd=0.0).candidates if c.utility >= -1e9)
        for f in samples
    ) / len(samples)
    target = free_spend / 3
    lam = router.calibrate(samples, SPECS, target_cost_usd=target)
    spent = []
    for f in samples:
        d = router.decide(f, SPECS, lambda_usd=lam)
        spent.append(next(c.cost_usd for c in d.candidates if c.model == d.chosen))
    assert sum(spent) / len(spent) <= target * 1.0001 and lam > 0
    share_lam = router.calibrate(samples, SPECS, target_share=0.2, strong=frozenset({"deepseek-r1", "mistral-large"}))
    strong = sum(
        router.decide(f, SPECS, lambda_usd=share_lam).chosen in {"deepseek-r1", "mistral-large"} for f in samples
    )
    assert strong / len(samples) <= 0.2
    with pytest.raises(BadRequestError):
        router.calibrate(samples, SPECS)


def test_swapping_the_policy_does_not_disturb_requests_in_flight() -> None:
    router = Router(models=list(SPECS))
    data = Policy.default().model_dump()
    data["version"] = "all-in-on-phi"
    data["priors"] = {"_default": {m: (0.99 if m == "phi-4-mini" else 0.1) for m in SPECS}}
    features = router.features(msgs("hello"), intent="general_help", language="en")
    decisions: list[str] = []
    barrier = threading.Barrier(2)

    def route() -> None:
        barrier.wait()
        for _ in range(200):
            decisions.append(router.decide(features, SPECS).policy)

    thread = threading.Thread(target=route)
    thread.start()
    barrier.wait()
    router.set_policy(Policy.parse(data))
    thread.join()
    assert set(decisions) <= {"seed-priors-v1", "all-in-on-phi"}  # each decision used one whole policy
    assert router.decide(features, SPECS).chosen == "phi-4-mini"


async def test_the_llm_classifier_settles_unsure_intents_in_ask() -> None:
    phi = ScriptedModel(default=Reply('Sure! {"intent": "Sales-Message", "confidence": 0.8}'), label="phi")
    others = ScriptedModel(default="ok", label="others")
    data = Policy.default().model_dump()
    data["llm_classifier"] = "on"
    data["intent_threshold"] = 1.0  # every classified intent counts as unsure
    mj = Majordome(
        MajordomeConfig(retry=RetryPolicy(backoff_base_s=0)), providers={"phi-4-mini": phi, "*": others}, env={}
    )
    mj.router.set_policy(Policy.parse(data))
    mj.router.llm = mj._llm_classifier(mj.router.policy)
    assert mj.router.llm is not None
    answer = await mj.ask({"messages": [{"role": "user", "content": "hmm not sure what I want"}], "tenant": "t"})
    assert answer.decision.intent == "sales_message" and answer.decision.intent_source == "llm"
    assert len(phi.calls) == 1 and phi.calls[0].json_mode
    schema = phi.calls[0].json_schema
    assert schema is not None and "sales_message" in schema["properties"]["intent"]["enum"]
    await mj.ask({"messages": [{"role": "user", "content": "hmm not sure what I want"}], "tenant": "t"})
    assert len(phi.calls) == 1  # cached


def test_llm_classifier_parsing_is_tolerant() -> None:
    from majordome.router.intents import LLMIntentClassifier

    llm = LLMIntentClassifier(ScriptedModel(), {"fan_reply": "x", "sales_message": "y"})
    assert llm.parse('{"intent": "fan_reply", "confidence": 0.9}') == ("fan_reply", 0.9)
    assert llm.parse('Here you go: {"intent": "Sales Message", "confidence": "high"}') == ("sales_message", 0.7)
    assert llm.parse("fan_reply") == ("fan_reply", 0.6)
    assert llm.parse('{"intent": "poetry"}') is None
    assert llm.parse("fan_reply or sales_message") is None


def test_route_on_a_majordome_uses_the_router_and_its_deployments() -> None:
    mj = Majordome(providers={"*": ScriptedModel()}, env={})
    decision = mj.route(
        {"messages": [{"role": "user", "content": "Give me 5 reel ideas for my fitness page"}], "tenant": "t"}
    )
    assert decision.intent == "content_ideas"
    intent, confidence = mj.classify("translate my bio into Spanish please")
    assert intent == "translation" and confidence > 0.3
    asyncio.run(mj.aclose())


def test_the_llm_classifier_is_on_by_default_only_for_a_real_phi_endpoint(stub: Any) -> None:
    assert Majordome(providers={"*": ScriptedModel()}, env={}).router.llm is None  # a test double
    assert Majordome(MajordomeConfig(offline="always"), env={}).router.llm is None  # the local stand-in
    env = {
        "MAJORDOME_MODEL__PHI_4_MINI__API": "openai",
        "MAJORDOME_MODEL__PHI_4_MINI__ENDPOINT": stub.openai_base_url,
        "MAJORDOME_MODEL__PHI_4_MINI__AUTH": "none",
        **{
            f"MAJORDOME_MODEL__{m}__ENABLED": "false"
            for m in (
                "DEEPSEEK_V3",
                "DEEPSEEK_R1",
                "PHI_4_MULTIMODAL",
                "LLAMA_3_3_70B",
                "MISTRAL_LARGE",
                "AZURE_SPEECH_BATCH",
            )
        },
    }
    assert Majordome(env=env).router.llm is not None
