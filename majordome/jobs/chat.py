"""``chat.suggest``: three reply drafts for a fan's message, for a human to review and send."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from majordome._client import Majordome
from majordome._types import Request
from majordome._validation import ValidatedModel
from majordome.guardrails import GuardrailResult, Guardrails
from majordome.jobs._common import (
    JobOutput,
    detect_language,
    language_hint,
    language_instruction,
    wants_grounding,
)
from majordome.jobs._structured import JobOutputError, ask_structured, schema_instruction
from majordome.models.messages import Message

__all__ = ["ChatSuggestInput", "ChatSuggestOutput", "ChatTurn", "Draft", "chat_suggest"]

DRAFT_COUNT = 3


class ChatTurn(ValidatedModel):
    """One earlier message of the conversation: from the fan or from the creator."""

    role: Literal["fan", "creator"]
    text: str = Field(min_length=1)


class ChatSuggestInput(ValidatedModel):
    """A fan's message to draft replies for. ``language``: ``auto`` detects the fan's language."""

    tenant: str = Field(min_length=1, max_length=200)
    fan_id: str = Field(min_length=1, max_length=200)
    fan_message: str = Field(min_length=1)
    conversation: list[ChatTurn] = Field(default_factory=list)
    language: str = "auto"


class Draft(BaseModel):
    """One reply draft. A human reviews it before anything is sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(min_length=1)
    tone: str | None = None


class _DraftsAnswer(BaseModel):
    """What the model must return."""

    drafts: list[Draft] = Field(min_length=DRAFT_COUNT, max_length=DRAFT_COUNT)
    confidence: float = Field(ge=0, le=1)


class ChatSuggestOutput(JobOutput):
    """Reply drafts for a human to pick, edit and send; never sent automatically.

    ``drafts`` holds three drafts, or fewer when a draft broke a guardrail (it is removed and
    ``guardrails`` escalates with the reason), or none when the fan's message itself escalates,
    when the fan reached the frequency limit, or when the model's answer was unusable
    (``fallback``).
    """

    drafts: list[Draft]
    language: str
    confidence: float = Field(ge=0, le=1)
    guardrails: GuardrailResult
    removed_drafts: int = 0


_SYSTEM = """You help a creator's chat team answer fans on a subscription platform. \
Write {count} different reply drafts to the fan's latest message, in the creator's voice: warm, \
personal, short (one to three sentences). A human reviews the drafts before sending one.
Never: share or ask for contact details or other apps (email, phone, Snapchat, WhatsApp, \
Telegram, Instagram DMs, links); promise or suggest meeting in real life; mention or imply \
anyone under 18; describe anything non-consensual.
{language}
Give each draft a one-word tone, and your confidence (0 to 1) that the drafts fit the conversation.
{schema}"""


def _prompt(data: ChatSuggestInput) -> str:
    lines = []
    if data.conversation:
        lines.append("Conversation so far:")
        lines.extend(f"{'Fan' if t.role == 'fan' else 'Creator'}: {t.text}" for t in data.conversation)
        lines.append("")
    lines.append("The fan's latest message:")
    lines.append(data.fan_message)
    return "\n".join(lines)


async def chat_suggest(
    mj: Majordome, data: ChatSuggestInput, *, guardrails: Guardrails | None = None
) -> ChatSuggestOutput:
    """Three reply drafts to ``data.fan_message``, in the fan's language, for a human to send.

    The fan's message goes through the guardrails first: when it escalates, or when the fan has
    reached the drafts-per-window limit, no model is called and the output holds no drafts.
    Each draft goes through the guardrails too; a draft that breaks a rule is removed and the
    output escalates with the reason. An unusable model answer (invalid twice) gives no drafts,
    ``fallback=True`` and an escalation, never an error. Grounded in the tenant's knowledge when
    ``mj`` has a knowledge base. ``guardrails`` defaults to the process-wide instance (its
    frequency counter is shared by every call; a request is refused once the fan has reached
    the limit, so one request may go up to three drafts past it).

    Failures to get any answer (every candidate failed, the deadline passed, the budget is
    spent) raise majordome's typed errors, for the worker to retry or report.
    """
    rails = guardrails or Guardrails.shared()
    language = detect_language(data.fan_message, data.language)
    incoming = GuardrailResult.combine([rails.check(data.fan_message), rails.check_frequency(data.tenant, data.fan_id)])
    if not incoming.allowed:
        return ChatSuggestOutput(drafts=[], language=language, confidence=0.0, guardrails=incoming)

    system = _SYSTEM.format(
        count=DRAFT_COUNT, language=language_instruction(language), schema=schema_instruction(_DraftsAnswer)
    )
    request = Request(
        messages=[Message(role="system", content=system), Message(role="user", content=_prompt(data))],
        tenant=data.tenant,
        job_type="chat.suggest",
        language=language_hint(language),
        json_mode=True,
        ground=wants_grounding(mj),
        metadata={"fan_id": data.fan_id},
    )
    try:
        result = await ask_structured(mj, request, _DraftsAnswer)
    except JobOutputError as exc:
        return ChatSuggestOutput(
            drafts=[],
            language=language,
            confidence=0.0,
            guardrails=GuardrailResult.escalate(["the model's answer was unusable"], ["output_validation"]),
            trace_id=exc.trace_ids[-1],
            trace_ids=list(exc.trace_ids),
            fallback=True,
            fallback_reason=str(exc),
        )

    kept = []
    verdicts = []
    for draft in result.value.drafts:
        verdict = rails.check(draft.text)
        verdicts.append(verdict)
        if verdict.allowed:
            kept.append(draft)
    rails.limiter.record(data.tenant, data.fan_id, len(kept))
    answer = result.answer
    return ChatSuggestOutput(
        drafts=kept,
        language=language,
        confidence=result.value.confidence,
        guardrails=GuardrailResult.combine(verdicts),
        removed_drafts=len(result.value.drafts) - len(kept),
        trace_id=answer.trace_id,
        trace_ids=[a.trace_id for a in result.answers],
        citations=list(answer.citations),
    )
