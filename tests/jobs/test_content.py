"""content.suggest and content.analyze with scripted models."""

from __future__ import annotations

import json

import pytest

from majordome import Majordome, MajordomeConfig
from majordome.guardrails import Guardrails
from majordome.jobs import (
    ContentAnalyzeInput,
    ContentSuggestInput,
    JobOutputError,
    content_analyze,
    content_suggest,
)
from majordome.testing import Reply, ScriptedModel


def ideas_json(*texts: str) -> str:
    return json.dumps(
        {"ideas": [{"title": f"Idea {i}", "text": t, "hashtags": ["#mood"]} for i, t in enumerate(texts, 1)]}
    )


def majordome(*replies: str) -> tuple[Majordome, ScriptedModel]:
    model = ScriptedModel(*(Reply(r) for r in replies))
    return Majordome(MajordomeConfig(), providers={"*": model}, env={}), model


async def test_content_suggest_returns_the_ideas_asked_for() -> None:
    mj, model = majordome(ideas_json("Golden hour by the window", "Guess what I'm wearing tonight"))
    async with mj:
        out = await content_suggest(
            mj,
            ContentSuggestInput(tenant="c1", kind="story", tone="mysterious", topic="a sunset shoot", count=2),
            guardrails=Guardrails(),
        )
    assert [i.text for i in out.ideas] == ["Golden hour by the window", "Guess what I'm wearing tonight"]
    assert out.ideas[0].hashtags == ["#mood"] and out.auto_send is False
    assert (out.kind, out.tone, out.language) == ("story", "mysterious", "en")
    (call,) = model.calls
    assert call.json_mode and "mysterious" in call.messages[0].text and "story" in call.messages[0].text
    assert call.messages[-1].text == "Give 2 ideas about: a sunset shoot"


async def test_content_suggest_retries_when_the_count_is_wrong() -> None:
    mj, model = majordome(ideas_json("only one"), ideas_json("one", "two", "three"))
    async with mj:
        out = await content_suggest(
            mj, ContentSuggestInput(tenant="c1", kind="post", tone="playful", topic="beach day", count=3)
        )
    assert len(out.ideas) == 3 and len(out.trace_ids) == 2
    assert "3 ideas were asked for, not 1" in model.calls[1].messages[-1].text


async def test_content_suggest_removes_an_idea_breaking_a_rule() -> None:
    mj, _ = majordome(ideas_json("Unlock my new set 🔥", "Add me on snapchat for more"))
    async with mj:
        out = await content_suggest(
            mj,
            ContentSuggestInput(tenant="c1", kind="ppv", tone="bold", topic="new lingerie set", count=2),
            guardrails=Guardrails(),
        )
    assert [i.text for i in out.ideas] == ["Unlock my new set 🔥"]
    assert out.removed_ideas == 1 and out.guardrails.action == "ESCALATE"


async def test_content_suggest_in_french() -> None:
    mj, model = majordome(ideas_json("Un coucher de soleil rien que pour toi"))
    async with mj:
        out = await content_suggest(
            mj,
            ContentSuggestInput(
                tenant="c1", kind="post", tone="romantic", topic="une soirée au bord de la mer", count=1
            ),
        )
    assert out.language == "fr" and "French" in model.calls[0].messages[0].text


async def test_content_suggest_invalid_twice_raises_job_output_error() -> None:
    mj, model = majordome("no json here", '{"ideas": []}')
    async with mj:
        with pytest.raises(JobOutputError) as caught:
            await content_suggest(mj, ContentSuggestInput(tenant="c1", kind="post", tone="bold", topic="gym", count=2))
    assert len(caught.value.errors) == 2 and "not valid JSON" in caught.value.errors[0]
    assert "ideas" in caught.value.errors[1] and len(caught.value.trace_ids) == 2
    assert len(model.calls) == 2


async def test_content_analyze_reads_score_sentiment_and_recommendations() -> None:
    reply = json.dumps(
        {"engagement_score": 72, "sentiment": "positive", "recommendations": ["Post at 9 pm", "Add a question"]}
    )
    mj, model = majordome(reply)
    async with mj:
        out = await content_analyze(
            mj,
            ContentAnalyzeInput(tenant="c1", content="New set dropping tonight, who's ready?", metrics={"likes": 120}),
            guardrails=Guardrails(),
        )
    assert (out.engagement_score, out.sentiment) == (72, "positive")
    assert out.recommendations == ["Post at 9 pm", "Add a question"]
    assert out.guardrails.allowed and out.auto_send is False
    (call,) = model.calls
    assert call.json_mode and '"likes": 120' in call.messages[-1].text


async def test_content_analyze_retries_an_out_of_range_score() -> None:
    bad = json.dumps({"engagement_score": 140, "sentiment": "great", "recommendations": ["x"]})
    good = json.dumps({"engagement_score": 40, "sentiment": "neutral", "recommendations": ["Shorter caption"]})
    mj, model = majordome(bad, good)
    async with mj:
        out = await content_analyze(mj, ContentAnalyzeInput(tenant="c1", content="Monday mood"))
    assert out.engagement_score == 40 and out.sentiment == "neutral"
    error = model.calls[1].messages[-1].text
    assert "engagement_score" in error and "sentiment" in error


async def test_content_analyze_flags_a_caption_with_contact_details() -> None:
    reply = json.dumps({"engagement_score": 50, "sentiment": "neutral", "recommendations": ["Remove the number"]})
    mj, _ = majordome(reply)
    async with mj:
        out = await content_analyze(
            mj, ContentAnalyzeInput(tenant="c1", content="DM me on whatsapp 06 12 34 56 78"), guardrails=Guardrails()
        )
    assert out.guardrails.action == "ESCALATE" and out.guardrails.rules == ["off_platform_contact"]
