"""chat.suggest with scripted models: valid JSON, a retry carrying the error, the fallback after
two invalid answers, guardrails on the fan's message and on a draft, the fan's language."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from majordome import Majordome, MajordomeConfig
from majordome.guardrails import FrequencyLimiter, Guardrails
from majordome.jobs import ChatSuggestInput, ChatTurn, chat_suggest
from majordome.knowledge.base import KnowledgeBase
from majordome.testing import HashingEmbedder, Reply, ScriptedModel


def drafts_json(*texts: str, confidence: float = 0.8) -> str:
    return json.dumps({"drafts": [{"text": t, "tone": "playful"} for t in texts], "confidence": confidence})


GOOD = drafts_json("Aww thank you, you made my day!", "You're sweet, tell me more 😘", "Glad you liked it babe!")


@pytest.fixture
def rails() -> Guardrails:
    return Guardrails(limiter=FrequencyLimiter(max_drafts=30, window_s=3600))


async def make(*replies: str) -> tuple[Majordome, ScriptedModel]:
    model = ScriptedModel(*(Reply(r) for r in replies))
    return Majordome(MajordomeConfig(), providers={"*": model}, env={}), model


@pytest.fixture
async def closing() -> AsyncIterator[list[Majordome]]:
    opened: list[Majordome] = []
    yield opened
    for mj in opened:
        await mj.aclose()


def fan(message: str, **extra: object) -> ChatSuggestInput:
    return ChatSuggestInput(tenant="creator_42", fan_id="fan_7", fan_message=message, **extra)  # type: ignore[arg-type]


async def test_valid_json_gives_three_drafts(rails: Guardrails, closing: list[Majordome]) -> None:
    mj, model = await make(GOOD)
    closing.append(mj)
    out = await chat_suggest(
        mj,
        fan("Loved your last video!", conversation=[ChatTurn(role="creator", text="Hey you, thanks for the tip!")]),
        guardrails=rails,
    )
    assert [d.text for d in out.drafts] == [d["text"] for d in json.loads(GOOD)["drafts"]]
    assert out.drafts[0].text == "Aww thank you, you made my day!" and out.drafts[0].tone == "playful"
    assert out.auto_send is False and out.fallback is False
    assert out.guardrails.action == "ALLOW" and out.removed_drafts == 0
    assert out.language == "en" and out.confidence == 0.8
    assert out.trace_id and out.trace_ids == [out.trace_id]
    (call,) = model.calls
    assert call.json_mode is True
    system, user = call.messages[0].text, call.messages[-1].text
    assert '"drafts"' in system and "English" in system  # the schema and the language are in the prompt
    assert "Creator: Hey you, thanks for the tip!" in user and user.endswith("Loved your last video!")
    assert call.context is not None and call.context.deadline_s == 90.0  # chat.suggest's deadline
    assert rails.limiter.remaining("creator_42", "fan_7") == 27


async def test_invalid_then_valid_json_retries_once_with_the_error(rails: Guardrails, closing: list[Majordome]) -> None:
    not_json = "Sure! Here are three drafts: 1. hi 2. hey 3. hello"
    mj, model = await make(not_json, GOOD)
    closing.append(mj)
    out = await chat_suggest(mj, fan("Loved your last video!"), guardrails=rails)
    assert len(out.drafts) == 3 and not out.fallback
    assert len(out.trace_ids) == 2 and out.trace_id == out.trace_ids[1]
    retry = model.calls[1].messages
    assert retry[-2].role == "assistant" and retry[-2].text == not_json
    assert retry[-1].role == "user" and "not valid JSON" in retry[-1].text


async def test_a_schema_violation_is_named_in_the_retry(rails: Guardrails, closing: list[Majordome]) -> None:
    two_drafts = drafts_json("one", "two")
    mj, model = await make(two_drafts, GOOD)
    closing.append(mj)
    out = await chat_suggest(mj, fan("Loved your last video!"), guardrails=rails)
    assert len(out.drafts) == 3
    assert "drafts" in model.calls[1].messages[-1].text and "at least 3" in model.calls[1].messages[-1].text


async def test_invalid_twice_falls_back_to_an_escalation(rails: Guardrails, closing: list[Majordome]) -> None:
    mj, model = await make("not json", '{"drafts": "nope"}')
    closing.append(mj)
    out = await chat_suggest(mj, fan("Loved your last video!"), guardrails=rails)
    assert out.fallback is True and out.fallback_reason and "_DraftsAnswer" in out.fallback_reason
    assert out.drafts == [] and out.confidence == 0.0
    assert out.guardrails.action == "ESCALATE" and out.guardrails.rules == ["output_validation"]
    assert len(model.calls) == 2 and len(out.trace_ids) == 2


@pytest.mark.parametrize(
    ("message", "language"), [("I'm 16, add me on snapchat", "en"), ("J'ai 16 ans, ajoute-moi sur snapchat", "fr")]
)
async def test_a_fan_message_that_escalates_calls_no_model(
    message: str, language: str, rails: Guardrails, closing: list[Majordome]
) -> None:
    mj, model = await make(GOOD)
    closing.append(mj)
    out = await chat_suggest(mj, fan(message), guardrails=rails)
    assert out.drafts == [] and out.guardrails.action == "ESCALATE" and out.language == language
    assert out.trace_id == "" and out.auto_send is False
    assert set(out.guardrails.rules) == {"minors", "off_platform_contact"}
    assert model.calls == []


async def test_a_draft_that_breaks_a_rule_is_removed(rails: Guardrails, closing: list[Majordome]) -> None:
    reply = drafts_json("Thank you love!", "Text me on WhatsApp at 06 12 34 56 78", "You're the best 😘")
    mj, _ = await make(reply)
    closing.append(mj)
    out = await chat_suggest(mj, fan("Loved your last video!"), guardrails=rails)
    assert [d.text for d in out.drafts] == ["Thank you love!", "You're the best 😘"]
    assert out.removed_drafts == 1
    assert out.guardrails.action == "ESCALATE" and out.guardrails.rules == ["off_platform_contact"]


async def test_a_french_fan_gets_french_drafts(rails: Guardrails, closing: list[Majordome]) -> None:
    mj, model = await make(drafts_json("Merci mon cœur !", "Tu es adorable", "Ça me touche beaucoup"))
    closing.append(mj)
    out = await chat_suggest(mj, fan("Salut ! J'ai adoré ta dernière vidéo, tu es trop belle"), guardrails=rails)
    assert out.language == "fr" and len(out.drafts) == 3
    assert "French" in model.calls[0].messages[0].text


async def test_the_frequency_limit_escalates_without_a_call(closing: list[Majordome]) -> None:
    rails = Guardrails(limiter=FrequencyLimiter(max_drafts=3, window_s=3600))
    mj, model = await make(GOOD, GOOD)
    closing.append(mj)
    first = await chat_suggest(mj, fan("Loved your last video!"), guardrails=rails)
    assert len(first.drafts) == 3
    second = await chat_suggest(mj, fan("Another one please!"), guardrails=rails)
    assert second.drafts == [] and second.guardrails.rules == ["frequency_limit"]
    assert len(model.calls) == 1


async def test_drafts_are_grounded_in_the_tenant_knowledge(rails: Guardrails, tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder())
    kb.ingest(
        [{"id": "custom", "text": "When a fan asks for custom videos, offer the 25 dollar bundle first."}],
        tenant="creator_42",
        kind="CHAT_CLOSER_PLAY",
    )
    model = ScriptedModel(Reply(GOOD))
    try:
        async with Majordome(MajordomeConfig(), providers={"*": model}, env={}, knowledge=kb) as mj:
            out = await chat_suggest(mj, fan("Do you make custom videos?"), guardrails=rails)
    finally:
        kb.close()
    assert [c.document_id for c in out.citations] == ["custom"]
    assert any("25 dollar bundle" in m.text for m in model.calls[0].messages)


async def test_a_guardrail_that_raises_escalates_without_a_call(closing: list[Majordome]) -> None:
    class Broken:
        name = "broken"

        def check(self, text: str) -> str | None:
            raise RuntimeError("regex engine on fire")

    mj, model = await make(GOOD)
    closing.append(mj)
    out = await chat_suggest(mj, fan("Loved your last video!"), guardrails=Guardrails(rules=[Broken()]))
    assert out.drafts == [] and out.guardrails.action == "ESCALATE"
    assert out.guardrails.reasons == ["guardrail error"] and model.calls == []
