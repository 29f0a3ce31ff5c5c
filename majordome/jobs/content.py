"""``content.suggest`` (ideas by kind and tone) and ``content.analyze`` (engagement, sentiment,
recommendations). Both are drafts for the creator's team; nothing is published automatically."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from majordome._client import Majordome
from majordome._types import Request
from majordome._validation import ValidatedModel
from majordome.guardrails import GuardrailResult, Guardrails
from majordome.jobs._common import JobOutput, detect_language, language_hint, language_instruction, wants_grounding
from majordome.jobs._structured import Structured, ask_structured, schema_instruction
from majordome.models.messages import Message

__all__ = [
    "ContentAnalyzeInput",
    "ContentAnalyzeOutput",
    "ContentSuggestInput",
    "ContentSuggestOutput",
    "Idea",
    "content_analyze",
    "content_suggest",
]

Sentiment = Literal["positive", "neutral", "negative"]


class ContentSuggestInput(ValidatedModel):
    """What to suggest: ``count`` ideas of ``kind`` in ``tone`` about ``topic``.
    ``language``: ``auto`` detects it from the topic."""

    tenant: str = Field(min_length=1, max_length=200)
    kind: Literal["post", "message", "ppv", "story"]
    tone: Literal["seductive", "playful", "romantic", "bold", "mysterious"]
    topic: str = Field(min_length=1)
    count: int = Field(default=5, ge=1, le=20)
    language: str = "auto"


class Idea(BaseModel):
    """One content idea: a title, the text (caption or message) and optional hashtags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    hashtags: list[str] = Field(default_factory=list)


class _IdeasAnswer(BaseModel):
    ideas: list[Idea] = Field(min_length=1)


class ContentSuggestOutput(JobOutput):
    """Ideas for the creator's team to pick and edit; never published automatically. An idea
    breaking a guardrail is removed (``removed_ideas``) and ``guardrails`` escalates."""

    ideas: list[Idea]
    kind: str
    tone: str
    language: str
    guardrails: GuardrailResult
    removed_ideas: int = 0


_KIND_WORDS = {
    "post": "feed post captions",
    "message": "mass messages to subscribers",
    "ppv": "pay-per-view message teasers (what makes a fan unlock the content, without revealing it)",
    "story": "story ideas (short, one idea per story)",
}

_SUGGEST_SYSTEM = """You write content ideas for a creator on a subscription platform: {what}, \
in a {tone} tone. Each idea has a short title, the text itself and a few hashtags when they fit \
(posts and stories). Never: contact details or other apps, meeting in real life, anyone under 18, \
anything non-consensual.
{language}
{schema}"""


async def content_suggest(
    mj: Majordome, data: ContentSuggestInput, *, guardrails: Guardrails | None = None
) -> ContentSuggestOutput:
    """``data.count`` ideas of ``data.kind`` in ``data.tone``, for the team to review.

    Each idea goes through the guardrails; one that breaks a rule is removed. An answer invalid
    twice raises :class:`~majordome.jobs.JobOutputError` (no safe default exists for ideas).
    """
    rails = guardrails or Guardrails.shared()
    language = detect_language(data.topic, data.language)
    system = _SUGGEST_SYSTEM.format(
        what=_KIND_WORDS[data.kind],
        tone=data.tone,
        language=language_instruction(language),
        schema=schema_instruction(_IdeasAnswer),
    )
    request = Request(
        messages=[
            Message(role="system", content=system),
            Message(role="user", content=f"Give {data.count} ideas about: {data.topic}"),
        ],
        tenant=data.tenant,
        job_type="content.suggest",
        language=language_hint(language),
        json_mode=True,
        ground=wants_grounding(mj),
        max_output_tokens=min(4096, 200 * data.count + 200),
    )

    def exactly(value: _IdeasAnswer) -> None:
        if len(value.ideas) != data.count:
            raise ValueError(f"ideas: {data.count} ideas were asked for, not {len(value.ideas)}")

    result = await ask_structured(mj, request, _IdeasAnswer, check=exactly)
    kept, verdicts = [], []
    for idea in result.value.ideas:
        verdict = rails.check(f"{idea.title}\n{idea.text}")
        verdicts.append(verdict)
        if verdict.allowed:
            kept.append(idea)
    return ContentSuggestOutput(
        ideas=kept,
        kind=data.kind,
        tone=data.tone,
        language=language,
        guardrails=GuardrailResult.combine(verdicts),
        removed_ideas=len(result.value.ideas) - len(kept),
        **_trace(result),
    )


class ContentAnalyzeInput(ValidatedModel):
    """A piece of content to analyse: its text or caption, and its metrics when known
    (views, likes, tips, unlocks…)."""

    tenant: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    language: str = "auto"


class _AnalysisAnswer(BaseModel):
    engagement_score: int = Field(ge=0, le=100)
    sentiment: Sentiment
    recommendations: list[str] = Field(min_length=1, max_length=10)


class ContentAnalyzeOutput(JobOutput):
    """The model's reading of a piece of content: an engagement score (0–100, an estimate, not a
    measurement), its sentiment and recommendations. ``guardrails``: the content itself checked
    against the platform's rules (a caption with a phone number escalates)."""

    engagement_score: int = Field(ge=0, le=100)
    sentiment: Sentiment
    recommendations: list[str]
    language: str
    guardrails: GuardrailResult


_ANALYZE_SYSTEM = """You analyse a creator's content for a subscription platform: estimate its \
engagement potential (0 to 100), its sentiment (positive, neutral or negative), and give concrete \
recommendations to improve it (hook, call to action, timing, format). When metrics are given, use \
them. Write the recommendations in {language}.
{schema}"""


async def content_analyze(
    mj: Majordome, data: ContentAnalyzeInput, *, guardrails: Guardrails | None = None
) -> ContentAnalyzeOutput:
    """Engagement score, sentiment and recommendations for ``data.content``.

    An answer invalid twice raises :class:`~majordome.jobs.JobOutputError` (a made-up score would
    be worse than none).
    """
    rails = guardrails or Guardrails.shared()
    language = detect_language(data.content, data.language)
    system = _ANALYZE_SYSTEM.format(
        language={"fr": "French", "en": "English"}.get(language, "the content's language"),
        schema=schema_instruction(_AnalysisAnswer),
    )
    user = f"Content:\n{data.content}"
    if data.metrics:
        user += "\n\nMetrics: " + json.dumps(data.metrics, sort_keys=True)
    request = Request(
        messages=[Message(role="system", content=system), Message(role="user", content=user)],
        tenant=data.tenant,
        job_type="content.analyze",
        language=language_hint(language),
        json_mode=True,
        ground=wants_grounding(mj),
    )
    result = await ask_structured(mj, request, _AnalysisAnswer)
    value = result.value
    return ContentAnalyzeOutput(
        engagement_score=value.engagement_score,
        sentiment=value.sentiment,
        recommendations=value.recommendations,
        language=language,
        guardrails=rails.check(data.content),
        **_trace(result),
    )


def _trace(result: Structured[Any]) -> dict[str, Any]:
    answer = result.answer
    return {
        "trace_id": answer.trace_id,
        "trace_ids": [a.trace_id for a in result.answers],
        "citations": list(answer.citations),
    }
