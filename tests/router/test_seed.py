from __future__ import annotations

import pytest

from majordome import CapabilityError, Catalogue, ContextWindowExceeded, Message
from majordome.models.messages import Modality
from majordome.models.tokens import estimate_prompt_tokens, prompt_tokens_upper_bound
from majordome.router import RequestFeatures, seed_route

CATALOGUE = Catalogue.default()
SPECS = {k: v for k, v in CATALOGUE.items() if v.kind == "chat"}


def features(
    text: str = "hello",
    *,
    modalities: frozenset[Modality] = frozenset({Modality.TEXT}),
    job_type: str | None = None,
    intent: str | None = None,
    language: str | None = None,
    json_mode: bool = False,
) -> RequestFeatures:
    messages = [Message(role="user", content=text)]
    return RequestFeatures(
        modalities=modalities,
        job_type=job_type,
        intent=intent,
        language=language,
        json_mode=json_mode,
        prompt_tokens_bound=prompt_tokens_upper_bound(messages),
        count_prompt_tokens=lambda: estimate_prompt_tokens(messages),
    )


def route(f: RequestFeatures, specs=SPECS, **kwargs):
    return seed_route(f, specs, requested_output=kwargs.pop("requested_output", None), default_output=1024, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"modalities": frozenset({Modality.TEXT, Modality.IMAGE})}, "phi-4-multimodal"),
        ({"modalities": frozenset({Modality.AUDIO})}, "phi-4-multimodal"),
        ({"intent": "reasoning"}, "deepseek-r1"),
        ({"job_type": "chat.suggest"}, "llama-3.3-70b"),
        ({"intent": "caption_writing"}, "llama-3.3-70b"),
        ({"language": "fr"}, "mistral-large"),
        ({"intent": "extraction"}, "phi-4-mini"),
        ({}, "deepseek-v3"),
    ],
)
def test_seed_rules(kwargs: dict, expected: str) -> None:
    decision = route(features(**kwargs))
    assert decision.chosen == expected
    assert decision.chain[0] == expected
    assert decision.policy == "seed-rules-v1"
    assert decision.reason


def test_chain_follows_configured_fallbacks() -> None:
    decision = route(features(intent="reasoning"))
    assert decision.chain == ("deepseek-r1", "deepseek-v3", "mistral-large")


def test_json_mode_excludes_models_without_it_and_explains() -> None:
    decision = route(features(intent="reasoning", json_mode=True))
    assert decision.chosen == "deepseek-v3"  # R1 has no JSON mode: its first fallback takes over
    assert decision.rejected["deepseek-r1"] == "no JSON mode"
    assert "deepseek-r1 left out (no JSON mode)" in decision.reason


def test_image_to_text_only_models_is_refused_before_any_call() -> None:
    specs = {k: v for k, v in SPECS.items() if k != "phi-4-multimodal"}
    with pytest.raises(CapabilityError, match="cannot read image input"):
        route(features(modalities=frozenset({Modality.TEXT, Modality.IMAGE})), specs)


def test_pinned_model_without_the_capability_is_refused() -> None:
    with pytest.raises(CapabilityError, match="deepseek-v3: cannot read image input"):
        route(features(modalities=frozenset({Modality.IMAGE})), pinned="deepseek-v3")


def test_pinned_model_has_no_fallback() -> None:
    decision = route(features(), pinned="phi-4-mini")
    assert decision.chain == ("phi-4-mini",) and decision.policy == "pinned"


def test_long_prompt_goes_to_a_longer_context_candidate() -> None:
    small = SPECS["llama-3.3-70b"].model_copy(update={"context_window": 8000})
    specs = {**SPECS, "llama-3.3-70b": small}
    decision = route(features("word " * 9000, job_type="chat.suggest"), specs)
    assert decision.chosen == "mistral-large"  # llama's first fallback
    assert "exceeds its context window of 8000" in decision.rejected["llama-3.3-70b"]


def test_prompt_over_every_window_is_refused_with_the_numbers() -> None:
    specs = {k: v.model_copy(update={"context_window": 2000}) for k, v in SPECS.items()}
    with pytest.raises(ContextWindowExceeded) as info:
        route(features("word " * 3000), specs, requested_output=500)
    error = info.value
    assert error.largest_window == 2000
    assert error.prompt_tokens > 3000
    assert error.output_tokens == 500
    assert "2000" in str(error) and str(error.prompt_tokens) in str(error)


def test_cheap_bound_avoids_counting_short_prompts() -> None:
    counted = []
    f = features("short")
    f.count_prompt_tokens = lambda: counted.append(1) or 5  # type: ignore[method-assign]
    route(f)
    assert counted == []
