"""What the job helpers share: the output base (drafts, never auto-sent), language, grounding."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from majordome._client import Majordome
from majordome._types import Citation
from majordome.router.language import LanguageDetector

__all__ = ["JobOutput", "detect_language", "language_hint", "language_instruction", "wants_grounding"]

_detector = LanguageDetector()

_LANGUAGE_NAMES = {"fr": "French", "en": "English"}


class JobOutput(BaseModel):
    """Common fields of every job's output. Outputs are drafts for a human to review and send:
    ``auto_send`` is always False, and nothing here sends anything to a fan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_send: Literal[False] = False
    trace_id: str = ""
    """The trace of the last model call (the one whose answer was used); empty when no model
    was called (e.g. a fan message the guardrails escalated)."""
    trace_ids: list[str] = Field(default_factory=list)
    """Every model call made for this output, in order (two when the answer was retried)."""
    citations: list[Citation] = Field(default_factory=list)
    """Knowledge-base passages quoted into the prompt (grounded jobs only)."""
    fallback: bool = False
    fallback_reason: str | None = None
    """Set when the model's answer could not be used and the output is a safe default."""


def detect_language(text: str, requested: str | None) -> str:
    """``requested`` unless it is None or ``"auto"``; else ``fr``/``en`` detected from ``text``
    (``other`` when neither)."""
    if requested and requested != "auto":
        return requested.lower()
    language, _confidence = _detector.detect(text)
    return language


def language_instruction(language: str) -> str:
    if language == "other":
        return "Write in the same language as the fan's message."
    return f"Write in {_LANGUAGE_NAMES.get(language, language)}."


def language_hint(language: str) -> str | None:
    """A routing hint the router understands (``fr``/``en``), else None."""
    return language if language in ("fr", "en") else None


def wants_grounding(mj: Majordome) -> bool:
    """Ground in the tenant's knowledge when this Majordome has a knowledge base."""
    return mj.knowledge is not None
