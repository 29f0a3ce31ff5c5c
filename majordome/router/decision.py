"""The objects the router produces and reads: request features, scored candidates, the decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from majordome.models.messages import Modality

__all__ = ["CandidateScore", "RequestFeatures", "RoutingDecision"]


@dataclass(slots=True)
class RequestFeatures:
    """What the router knows of a request.

    ``intent_probs`` (over :data:`majordome.router.intents.INTENTS`) is set when the intent was
    classified, None when a hint fixed it. The prompt's token count and the text's embedding are
    computed on demand: a cheap byte bound settles most context-window checks, and only quality
    models that read embeddings ask for one.
    """

    modalities: frozenset[Modality]
    job_type: str | None
    intent: str
    intent_confidence: float
    intent_source: str  # "hint", "classifier", "llm", "attachment"
    language: str
    language_confidence: float
    language_source: str  # "hint" or "detected"
    tier: str
    json_mode: bool
    depth: int  # user turns in the conversation
    text: str  # the text classified (the last user message)
    prompt_tokens_bound: int
    count_prompt_tokens: Callable[[], int]
    embed: Callable[[], np.ndarray] | None = None
    intent_probs: np.ndarray | None = None
    retrieved_tokens: int = 0
    _prompt_tokens: int | None = field(default=None, repr=False)
    _embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def prompt_tokens(self) -> int:
        if self._prompt_tokens is None:
            self._prompt_tokens = self.count_prompt_tokens()
        return self._prompt_tokens

    @property
    def embedding(self) -> np.ndarray:
        if self._embedding is None:
            if self.embed is None:
                raise RuntimeError("no embedder is configured for this router")
            self._embedding = self.embed()
        return self._embedding

    def fits(self, window: int, output_tokens: int) -> bool:
        """Whether the prompt, the retrieved context and ``output_tokens`` fit in ``window`` tokens."""
        extra = self.retrieved_tokens + output_tokens
        if self.prompt_tokens_bound + extra <= window:
            return True
        return self.prompt_tokens + extra <= window


class CandidateScore(NamedTuple):
    """One candidate as the router scored it (a named tuple: the router makes six per decision)."""

    model: str
    quality: float
    cost_usd: float
    latency_s: float
    utility: float
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "quality": round(self.quality, 4),
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 3),
            "utility": round(self.utility, 4),
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Which model answers, which follow if it fails, and why.

    ``chain`` starts with ``chosen``; ``candidates`` are the eligible models ranked by utility;
    ``rejected`` says why each other chat model was left out; ``policy`` names the policy (and
    version) that decided, for evaluation and rollback; ``explored`` is true when the choice was
    an exploration rather than the best-scored model.
    """

    chosen: str
    chain: tuple[str, ...]
    rejected: Mapping[str, str]
    policy: str
    candidates: tuple[CandidateScore, ...] = ()
    intent: str | None = None
    intent_confidence: float | None = None
    intent_source: str | None = None
    language: str | None = None
    quality_model: str | None = None
    explored: bool = False
    job_type: str | None = None
    note: str = ""  # added to the reason (e.g. why the deadline could not be honoured)
    quota_wait_s: float = 0.0
    """> 0 when every candidate's deployment was at its quota: the chosen one is expected to
    have room in this many seconds, and the call waits for it (within the deadline)."""

    @property
    def reason(self) -> str:
        """One line for a person (formatted on demand: most decisions are never read)."""
        if self.policy.endswith("/pinned"):
            return f"pinned by the request ({self.chosen}){self.note}"
        how = {"hint": "given", "job_type": f"from job {self.job_type}", "attachment": "from the attachments"}.get(
            self.intent_source or "", f"{self.intent_source} {self.intent_confidence or 0:.2f}"
        )
        text = f"intent {self.intent} ({how}), {self.language}"
        best = next((c for c in self.candidates if c.model == self.chosen), None)
        if best is not None:
            text += (
                f": {best.model} has the best utility {best.utility:.3f} "
                f"(Q {best.quality:.2f}, ${best.cost_usd:.5f}, {best.latency_s:.1f} s)"
            )
            runner = next((c for c in self.candidates if c.model != self.chosen), None)
            if runner is not None:
                text += f"; next {runner.model} {runner.utility:.3f}"
        return text + self.note

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "chain": list(self.chain),
            "reason": self.reason,
            "rejected": dict(self.rejected),
            "policy": self.policy,
            "candidates": [c.to_dict() for c in self.candidates],
            "intent": self.intent,
            "intent_confidence": None if self.intent_confidence is None else round(self.intent_confidence, 4),
            "intent_source": self.intent_source,
            "language": self.language,
            "quality_model": self.quality_model,
            "explored": self.explored,
            "quota_wait_s": round(self.quota_wait_s, 3),
        }
