from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from majordome._errors import BadRequestError, ConfigurationError
from majordome.knowledge.base import KnowledgeBase
from majordome.knowledge.embeddings import SentenceTransformerEmbedder
from majordome.knowledge.store import SearchFilters, TenantRequired
from majordome.testing import HashingEmbedder

FIXTURES = Path(__file__).parent / "fixtures" / "kb"


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    opened = KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder())
    yield opened
    opened.close()


PLAYS = [
    {"id": "p1", "fan_message": "Do you sell custom videos?", "creator_reply": "Yes: 25 dollars, ready in two days."},
    {"id": "p2", "fan_message": "Tu fais des remises ?", "creator_reply": "Oui, -20 % ce soir seulement."},
]


def test_ingest_is_idempotent_and_a_changed_document_replaces_its_chunks(kb: KnowledgeBase) -> None:
    first = kb.ingest(PLAYS, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
    assert (first.documents, first.chunks, first.removed_chunks) == (2, 2, 0)
    again = kb.ingest(PLAYS, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
    assert (again.chunks, again.removed_chunks) == (2, 0) and kb.store.count("creator_1") == 2
    changed = [PLAYS[0] | {"creator_reply": "Yes, 30 dollars now."}, PLAYS[1]]
    third = kb.ingest(changed, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
    assert third.removed_chunks == 1 and kb.store.count("creator_1") == 2
    assert "30 dollars" in kb.search("custom videos price", tenant="creator_1", k=1)[0].chunk.text


def test_search_sees_own_and_shared_never_another_tenant(kb: KnowledgeBase) -> None:
    kb.ingest(PLAYS, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
    kb.ingest([{"id": "secret", "text": "Custom videos cost 99 dollars here."}], tenant="creator_2")
    kb.ingest(
        [{"id": "rule", "text": "Never promise custom videos the same day."}], tenant="shared", kind="EDITING_RULESET"
    )
    for mode in ("hybrid", "dense", "sparse"):
        hits = kb.search("custom videos", tenant="creator_1", k=10, mode=mode)
        tenants = {h.chunk.tenant for h in hits}
        assert tenants <= {"creator_1", "shared"} and "shared" in tenants, mode
    ruleset = kb.search("custom videos", tenant="creator_1", filters=SearchFilters(kind=["EDITING_RULESET"]))
    assert [h.chunk.document_id for h in ruleset] == ["rule"]


def test_hybrid_finds_the_known_answer_on_a_tiny_corpus(kb: KnowledgeBase) -> None:
    corpus = [
        {"id": "pricing", "text": "Bundles: three photos for ten dollars, or a video for twenty-five."},
        {"id": "schedule", "text": "Post short videos in the evening; stories every morning."},
        {"id": "tone", "text": "Keep replies playful and short, never pushy."},
        {"id": "fr", "text": "Les abonnés français préfèrent les lives du dimanche soir."},
    ]
    kb.ingest(corpus, tenant="creator_1")
    assert kb.search("how much is a video bundle", tenant="creator_1", k=1)[0].chunk.document_id == "pricing"
    assert kb.search("quand faire un live pour les abonnés", tenant="creator_1", k=1)[0].chunk.document_id == "fr"
    assert kb.search("what time should I post videos", tenant="creator_1", k=1)[0].chunk.document_id == "schedule"


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_ingested(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Guide\n\nReply within the hour to keep fans.", "utf-8")
    (folder / "empty.txt").write_text("", "utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (folder / "latin.txt").write_bytes("café crème".encode("latin-1"))
    summary = kb.ingest(folder, tenant="creator_1")
    assert summary.documents == 1 and kb.store.count("creator_1") == 1
    reasons = {Path(issue.path).name for issue in summary.report.skipped}
    assert reasons == {"empty.txt", "binary.txt", "latin.txt"}


def test_errors_for_missing_tenant_and_empty_query(kb: KnowledgeBase) -> None:
    with pytest.raises(TenantRequired):
        kb.search("anything", tenant="")
    with pytest.raises(BadRequestError):
        kb.search("   ", tenant="creator_1")
    with pytest.raises(TenantRequired):
        kb.ingest(PLAYS, tenant=None)  # type: ignore[arg-type]


def test_reopen_keeps_the_data_and_refuses_another_embedder(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder()) as kb:
        kb.ingest(FIXTURES, tenant="creator_42")
        stored = kb.store.count()
    with KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder()) as kb:
        assert kb.store.count() == stored > 0
    with pytest.raises(ConfigurationError, match="test/word-hash"):
        KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder("other/model", 32))


def test_the_real_offline_embedder_end_to_end(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", embedder=SentenceTransformerEmbedder()) as kb:
        kb.ingest(PLAYS, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
        hit = kb.search("how much for a personalised clip?", tenant="creator_1", k=1, mode="dense")[0]
        assert hit.chunk.document_id == "p1" and hit.citation == "p1#0"


def test_hybrid_runs_bm25_alone_when_the_embedder_does_not_cover_the_language(tmp_path: Path) -> None:
    corpus = [
        {"id": "fr", "text": "Les abonnés préfèrent les lives du dimanche soir, avec une remise pour les fidèles."},
        {"id": "en", "text": "Fans like Sunday evening live streams with a discount for loyal subscribers."},
    ]
    with KnowledgeBase.open(tmp_path / "kb", embedder=HashingEmbedder(languages=["en"])) as kb:
        kb.ingest(corpus, tenant="creator_1")
        french = kb.search("quand les abonnés préfèrent-ils les lives ?", tenant="creator_1", k=2)
        assert {h.mode for h in french} == {"sparse"} and french[0].chunk.document_id == "fr"
        english = kb.search("when do fans like live streams?", tenant="creator_1", k=2)
        assert {h.mode for h in english} == {"hybrid"}
        forced = kb.search("quand les abonnés préfèrent-ils les lives ?", tenant="creator_1", k=2, mode="dense")
        assert {h.mode for h in forced} == {"dense"}  # an explicit mode is obeyed
        assert kb.covers("en") and not kb.covers("fr") and kb.covers(None)
    with KnowledgeBase.open(tmp_path / "kb2", embedder=HashingEmbedder()) as kb:
        kb.ingest(corpus, tenant="creator_1")
        assert {h.mode for h in kb.search("quand les abonnés préfèrent-ils les lives ?", tenant="creator_1")} == {
            "hybrid"
        }


def test_the_default_embedder_declares_english_only() -> None:
    pytest.importorskip("sentence_transformers")
    assert SentenceTransformerEmbedder().languages == frozenset({"en"})
    assert SentenceTransformerEmbedder("some/multilingual-model").languages is None


def test_performance_boost_lifts_the_play_that_converted(kb: KnowledgeBase) -> None:
    plays = [
        {"id": "plain", "text": "Custom video offer: twenty five dollars, delivered in two days."},
        {
            "id": "winner",
            "text": "Custom video offer: twenty five dollars, delivered in three days.",
            "performance": {"conversions": 40, "revenue": 1000.0},
        },
        {"id": "other", "text": "Weekly schedule for posting stories."},
    ]
    kb.ingest(plays, tenant="creator_1", kind="CHAT_CLOSER_PLAY")
    query = "custom video offer delivered in two days"
    assert kb.search(query, tenant="creator_1", k=1)[0].chunk.document_id == "plain"
    boosted = kb.search(query, tenant="creator_1", k=3, boost=1.0)
    assert boosted[0].chunk.document_id == "winner"
    assert boosted[0].chunk.performance is not None and boosted[0].chunk.performance.conversions == 40
    assert {h.chunk.document_id for h in boosted} == {"plain", "winner", "other"}
    with pytest.raises(BadRequestError, match="boost"):
        kb.search(query, tenant="creator_1", boost=-1)


def test_diversity_replaces_a_near_duplicate(kb: KnowledgeBase) -> None:
    corpus = [
        {"id": "a", "text": "Discount codes for loyal fans: ten percent off bundles this weekend."},
        {"id": "a-copy", "text": "Discount codes for loyal fans: ten percent off bundles this weekend!"},
        {"id": "b", "text": "Discount etiquette: never offer codes to new fans in the first message."},
    ]
    kb.ingest(corpus, tenant="creator_1")
    query = "discount codes for loyal fans"
    plain = [h.chunk.document_id for h in kb.search(query, tenant="creator_1", k=2)]
    assert set(plain) == {"a", "a-copy"}
    diverse = [h.chunk.document_id for h in kb.search(query, tenant="creator_1", k=2, diversity=0.7)]
    assert diverse[0] in {"a", "a-copy"} and diverse[1] == "b"
    with pytest.raises(BadRequestError, match="diversity"):
        kb.search(query, tenant="creator_1", diversity=2.0)


def test_embed_texts_uses_the_query_and_passage_halves_of_an_asymmetric_embedder() -> None:
    from majordome.knowledge.base import embed_texts

    class Asymmetric(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def embed_queries(self, texts: list[str]) -> object:
            self.calls.append("query")
            return self.embed(texts)

        def embed_passages(self, texts: list[str]) -> object:
            self.calls.append("passage")
            return self.embed(texts)

    embedder = Asymmetric()
    embed_texts(embedder, ["q"], "query")
    embed_texts(embedder, ["p"], "passage")
    assert embedder.calls == ["query", "passage"]
