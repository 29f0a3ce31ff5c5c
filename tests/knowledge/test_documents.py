from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest

from majordome._errors import BadRequestError
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.documents import (
    DEFAULT_KIND,
    SHARED,
    Chunk,
    Document,
    Kind,
    Performance,
    is_free_kind,
    normalise_language,
)


def doc(**overrides: Any) -> Document:
    values: dict[str, Any] = {"tenant": "creator-1", "text": "Answer first, then offer."}
    values.update(overrides)
    return Document(**values)


def test_kinds_are_normalised_and_free_kinds_are_upper_case_names() -> None:
    assert doc(kind="chat closer play").kind == Kind.CHAT_CLOSER_PLAY
    assert doc(kind=Kind.TREND_TEMPLATE).kind == "TREND_TEMPLATE"
    assert type(doc(kind=Kind.TREND_TEMPLATE).kind) is str  # stored plain, for the payload
    assert doc(kind="viral-structure").kind == Kind.VIRAL_STRUCTURE
    assert doc(kind=" faq ").kind == "FAQ" and is_free_kind("FAQ")
    assert not is_free_kind(doc(kind="editing_ruleset").kind)
    assert doc().kind == DEFAULT_KIND == "GENERAL"
    with pytest.raises(BadRequestError, match="kind"):
        doc(kind="règle!")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        *[("fr", "fr"), ("fr-FR", "fr"), ("French", "fr"), ("français", "fr")],
        *[("en_GB", "en"), ("eng", "en"), ("de", "other"), ("other", "other"), ("", None), (None, None)],
    ],
)
def test_languages_are_normalised(given: str | None, expected: str | None) -> None:
    assert normalise_language(given) == expected
    assert doc(language=given).language == expected


def test_invalid_values_raise_a_value_error_naming_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tenant": ""}, "tenant"),
        ({"tenant": " creator-1"}, "tenant"),
        ({"text": "   "}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": "a\ud800b"}, "text"),
        ({"language": "12"}, "language"),
        ({"performance": {"revenue": -1.0}}, "performance.revenue"),
        ({"performance": {"score": math.nan}}, "performance.score"),
        ({"performance": {"revenue": math.inf}}, "performance.revenue"),
        ({"performance": {"conversions": 2.5}}, "performance.conversions"),
        ({"performance": {"conversion": 2}}, "performance.conversion"),
        ({"metadata": {"when": object()}}, "metadata"),
        ({"metadata": {"x": math.nan}}, "metadata"),
        ({"tags": "a, b"}, "tags"),
        ({"format": "html"}, "format"),
        ({"surprise": 1}, "surprise"),
    ]
    for overrides, field in cases:
        # Nested models name the outer field, then the inner one.
        with pytest.raises(BadRequestError, match=field.replace(".", r"\b.*\b")) as info:
            doc(**overrides)
        assert isinstance(info.value, ValueError)


def test_labels_and_tags_are_tidied() -> None:
    document = doc(niche=" Fitness ", platform="OnlyFans", title="  ", tags=["ppv", " ppv ", "upsell", ""])
    assert (document.niche, document.platform, document.title) == ("fitness", "onlyfans", None)
    assert document.tags == ("ppv", "upsell")
    whole: dict[str, Any] = {"conversions": 3.0}
    assert Performance(**whole).conversions == 3
    assert doc(performance={"conversions": 0, "revenue": 0}).performance == Performance(conversions=0, revenue=0.0)


def test_ids_are_given_or_derived_from_tenant_source_and_text() -> None:
    assert doc(id="play-1").id == "play-1"
    derived = doc(source="kb/a.md")
    assert derived.id == doc(source="kb/a.md").id  # stable
    assert len(derived.id) == 32
    assert derived.id != doc(source="kb/b.md").id
    assert derived.id != doc(source="kb/a.md", tenant="creator-2").id
    assert derived.id != doc(source="kb/a.md", text="Something else.").id
    assert doc(tenant=SHARED).is_shared and not derived.is_shared


def test_documents_are_frozen() -> None:
    document = doc()
    with pytest.raises(Exception, match="frozen"):
        document.text = "changed"


def test_chunk_payload_round_trips_through_json() -> None:
    document = doc(
        id="guide",
        title="Guide",
        text="# Pricing\n\nOffer two bundles.",
        format="markdown",
        language="en",
        niche="fitness",
        platform="tiktok",
        source="kb/guide.md",
        tags=["pricing"],
        performance={"conversions": 2, "revenue": 10.5},
        metadata={"campaign": "summer", "nested": {"a": [1, 2]}},
    )
    [chunk] = Chunker().chunk(document)
    payload = json.loads(json.dumps(chunk.payload(), allow_nan=False))
    assert payload["doc_id"] == "guide" and payload["tenant"] == "creator-1" and payload["kind"] == "GENERAL"
    assert payload["metadata"] == {"campaign": "summer", "nested": {"a": [1, 2]}}
    assert Chunk.from_payload(chunk.id, payload) == chunk
    assert uuid.UUID(chunk.id)  # a valid Qdrant point id
    assert chunk.embedding_text == "Guide > Pricing\n\nOffer two bundles."


def test_chunk_ids_depend_on_tenant_document_text_and_occurrence() -> None:
    base = Chunk.make_id("t1", "d1", "text")
    assert base == Chunk.make_id("t1", "d1", "text")
    others = {
        Chunk.make_id("t2", "d1", "text"),
        Chunk.make_id("t1", "d2", "text"),
        Chunk.make_id("t1", "d1", "text!"),
        Chunk.make_id("t1", "d1", "text", 1),
    }
    assert base not in others and len(others) == 4
