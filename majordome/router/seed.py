"""The platform's seed routing policy, with the capability and context-window filters.

The rules are the platform's earlier fixed policy (DESIGN.md, "Seed facts"), applied in order:
audio, image or video → Phi-4-multimodal; reasoning (math, code, planning) → DeepSeek-R1;
creative writing and fan chat → Llama-3.3-70B; French → Mistral-Large; classification and
extraction → Phi-4-mini; anything else → DeepSeek-V3. They are priors: the learned router
replaces them, and they only read hints the worker gave (job type, intent, language).

Every model is first checked against the request: it must be an enabled chat deployment, read
every modality of the request, offer JSON mode when asked, and fit the prompt plus the expected
output in its context window. The chosen model's configured fallbacks that pass the same checks
follow it in the chain.
"""

from __future__ import annotations

from collections.abc import Mapping

from majordome._errors import CapabilityError, ContextWindowExceeded
from majordome.models.catalogue import MODALITY_CAPABILITY, Capability, ModelSpec
from majordome.models.messages import Modality
from majordome.router.decision import RequestFeatures, RoutingDecision

__all__ = ["SEED_POLICY", "check_candidate", "output_reserve", "seed_route"]

SEED_POLICY = "seed-rules-v1"

CREATIVE_JOBS = frozenset({"chat.suggest", "content.suggest"})
CREATIVE_INTENTS = frozenset({"fan_reply", "sales_message", "content_ideas", "caption_writing"})
SHORT_INTENTS = frozenset({"extraction"})
REASONING_INTENTS = frozenset({"reasoning"})
VISION_INTENTS = frozenset({"vision", "transcription"})


def output_reserve(spec: ModelSpec, requested: int | None, default: int) -> int:
    """Output tokens to reserve in the window: what was asked (capped by the model), else the default."""
    return min(requested or default, spec.output_cap)


def check_candidate(spec: ModelSpec, features: RequestFeatures, output_tokens: int) -> str | None:
    """None when ``spec`` can serve the request, else why not (one short sentence)."""
    if spec.kind != "chat":
        return f"{spec.kind} model, not a chat model"
    for modality in features.modalities:
        if MODALITY_CAPABILITY[modality] not in spec.capabilities:
            return f"cannot read {modality.value} input"
    if features.json_mode and Capability.JSON_MODE not in spec.capabilities:
        return "no JSON mode"
    if not features.fits(spec.window, output_tokens):
        return (
            f"prompt of {features.prompt_tokens} tokens + {output_tokens} output tokens "
            f"exceeds its context window of {spec.window}"
        )
    return None


def _seed_choice(features: RequestFeatures) -> tuple[str, str]:
    """The seed rule's model id and the reason, before any filtering."""
    if Modality.AUDIO in features.modalities or Modality.IMAGE in features.modalities:
        return "phi-4-multimodal", "the request carries image or audio input"
    if features.intent in VISION_INTENTS:
        return "phi-4-multimodal", f"intent {features.intent}"
    if features.intent in REASONING_INTENTS:
        return "deepseek-r1", "intent reasoning (math, code, planning)"
    if features.job_type in CREATIVE_JOBS or features.intent in CREATIVE_INTENTS:
        what = f"job {features.job_type}" if features.job_type in CREATIVE_JOBS else f"intent {features.intent}"
        return "llama-3.3-70b", f"creative writing / fan chat ({what})"
    if features.language == "fr":
        return "mistral-large", "French request"
    if features.intent in SHORT_INTENTS:
        return "phi-4-mini", f"short task (intent {features.intent})"
    return "deepseek-v3", "general generation"


def seed_route(
    features: RequestFeatures,
    specs: Mapping[str, ModelSpec],
    *,
    requested_output: int | None,
    default_output: int,
    pinned: str | None = None,
) -> RoutingDecision:
    """Route by the seed rules among ``specs`` (the deployments' effective specs).

    ``pinned`` (a catalogue id) skips the rules: that model or a typed error, no fallback.
    """
    rejected: dict[str, str] = {}
    for model_id, spec in specs.items():
        why = check_candidate(spec, features, output_reserve(spec, requested_output, default_output))
        if why is not None:
            rejected[model_id] = why
    eligible = [m for m in specs if m not in rejected]

    if pinned is not None:
        if pinned not in specs:
            raise CapabilityError(f"model {pinned} is not deployed (disabled, or not a chat model)")
        if pinned in rejected:
            _refuse(features, {pinned: specs[pinned]}, {pinned: rejected[pinned]}, requested_output, default_output)
        return RoutingDecision(pinned, (pinned,), "pinned by the request", rejected, "pinned")

    if not eligible:
        _refuse(features, specs, rejected, requested_output, default_output)
    target, reason = _seed_choice(features)
    if target in eligible:
        chosen = target
    else:
        why = rejected.get(target, "not deployed")
        alternatives = [f for f in specs[target].fallbacks if f in eligible] if target in specs else []
        chosen = alternatives[0] if alternatives else eligible[0]
        reason = f"{reason}; {target} left out ({why}), so {chosen}"
    chain = [chosen] + [f for f in specs[chosen].fallbacks if f in eligible and f != chosen]
    return RoutingDecision(chosen, tuple(chain), reason, rejected, SEED_POLICY)


def _refuse(
    features: RequestFeatures,
    specs: Mapping[str, ModelSpec],
    rejected: Mapping[str, str],
    requested_output: int | None,
    default_output: int,
) -> None:
    """Raise the typed error that explains why no model can serve the request."""
    windowed = [m for m, why in rejected.items() if "context window" in why]
    if windowed and len(windowed) == len([m for m in specs if specs[m].kind == "chat"]):
        largest = max(specs[m].window for m in windowed)
        output = min(output_reserve(specs[m], requested_output, default_output) for m in windowed)
        raise ContextWindowExceeded(
            f"the prompt has {features.prompt_tokens} tokens and {output} output tokens are reserved, "
            f"but the largest context window among the candidates is {largest} tokens",
            prompt_tokens=features.prompt_tokens,
            output_tokens=output,
            largest_window=largest,
        )
    detail = "; ".join(f"{m}: {why}" for m, why in rejected.items())
    raise CapabilityError(f"no deployed model can serve this request ({detail})")
