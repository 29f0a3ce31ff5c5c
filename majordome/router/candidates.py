"""Which models may serve a request at all, and how many output tokens to plan for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from majordome._errors import BudgetExceeded, CapabilityError, ContextWindowExceeded
from majordome.models.catalogue import MODALITY_CAPABILITY, Capability, ModelSpec
from majordome.router.decision import RequestFeatures

__all__ = ["QuotaRoom", "check_candidate", "output_reserve", "refuse"]


class QuotaRoom(Protocol):
    """What the router reads of a deployment's quota (:class:`majordome.quotas.Room`)."""

    @property
    def cost_multiplier(self) -> float:
        """>= 1, finite: how much dearer the deployment counts as it nears its quota."""

    def wait_s(self, tokens: int) -> float:
        """Seconds until a call of ``tokens`` would fit (0: now)."""


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
            f"prompt of {features.prompt_tokens} tokens"
            + (f" + {features.retrieved_tokens} retrieved" if features.retrieved_tokens else "")
            + f" + {output_tokens} output tokens exceeds its context window of {spec.window}"
        )
    return None


def refuse(
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
    if rejected and all(why.startswith("expected cost") for why in rejected.values()):
        raise BudgetExceeded(
            f"no model fits the request's cost limit ({'; '.join(f'{m}: {w}' for m, w in rejected.items())})"
        )
    detail = "; ".join(f"{m}: {why}" for m, why in rejected.items())
    raise CapabilityError(f"no deployed model can serve this request ({detail})")
