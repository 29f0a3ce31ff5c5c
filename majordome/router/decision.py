"""The objects the router produces and reads: request features and the routing decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from majordome.models.messages import Modality

__all__ = ["RequestFeatures", "RoutingDecision"]


@dataclass(slots=True)
class RequestFeatures:
    """What the router knows of a request. ``prompt_tokens`` is computed on demand: the cheap
    ``prompt_tokens_bound`` (never below it) settles most context-window checks alone."""

    modalities: frozenset[Modality]
    job_type: str | None
    intent: str | None
    language: str | None
    json_mode: bool
    prompt_tokens_bound: int
    count_prompt_tokens: Callable[[], int]
    _prompt_tokens: int | None = field(default=None, repr=False)

    @property
    def prompt_tokens(self) -> int:
        if self._prompt_tokens is None:
            self._prompt_tokens = self.count_prompt_tokens()
        return self._prompt_tokens

    def fits(self, window: int, output_tokens: int) -> bool:
        """Whether the prompt plus ``output_tokens`` fit in ``window`` tokens."""
        if self.prompt_tokens_bound + output_tokens <= window:
            return True
        return self.prompt_tokens + output_tokens <= window


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Which model answers, which follow if it fails, and why.

    ``chain`` starts with ``chosen``; ``rejected`` says why each other chat model was left out;
    ``policy`` names the policy (and version) that decided, for evaluation and rollback.
    """

    chosen: str
    chain: tuple[str, ...]
    reason: str
    rejected: Mapping[str, str]
    policy: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "chain": list(self.chain),
            "reason": self.reason,
            "rejected": dict(self.rejected),
            "policy": self.policy,
        }
