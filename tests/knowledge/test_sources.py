from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from majordome._errors import BadRequestError
from majordome.knowledge.documents import SHARED, Document, Kind, Performance
from majordome.knowledge.sources import (
    IngestIssue,
    IngestReport,
    documents_from_objects,
    iter_path,
    read_path,
    render_closer_play,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A copy of the fixture knowledge base, with bad files added next to the good ones."""
    root = tmp_path / "kb"
    shutil.copytree(FIXTURES / "kb", root)
    bad = root / "bad"
    bad.mkdir()
    (bad / "binary.txt").write_bytes(b"PNG\x00\x01\x02 not text")
    (bad / "empty.md").write_bytes(b"")
    (bad / "blank.txt").write_text("  \n\n \t\n")
    (bad / "latin1.txt").write_bytes("Café crème, très bon.".encode("latin-1"))
    (bad / "broken.json").write_text('{"text": "unterminated')
    (bad / "image.png").write_bytes(b"\x89PNG")
    (bad / "gone.txt").symlink_to(bad / "does-not-exist.txt")
    (root / ".hidden.txt").write_text("never read")
    return root


def reasons(report: IngestReport) -> dict[str, str]:
    return {Path(issue.path).name + (f":{issue.line}" if issue.line else ""): issue.reason for issue in report.skipped}


def test_a_folder_is_read_and_bad_files_are_reported_not_fatal(kb: Path) -> None:
    documents, report = read_path(kb, tenant="creator-a")
    by_source: dict[str, list[Document]] = {}
    for document in documents:
        by_source.setdefault(Path(document.source or "").name, []).append(document)
    assert {name: len(docs) for name, docs in by_source.items()} == {
        "guide.md": 1,
        "notes.txt": 1,
        "plays.jsonl": 3,
        "structures.json": 2,
        "templates.csv": 2,
    }
    assert report.documents == 9 and report.files == 5
    found = reasons(report)
    assert found["binary.txt"].startswith("binary file")
    assert found["empty.md"] == "empty file" and found["blank.txt"] == "empty file"
    assert found["latin1.txt"].startswith("not UTF-8 (byte 0xe9")
    assert found["broken.json"].startswith("invalid JSON") and "line 1" in found["broken.json"]
    assert found["image.png"].startswith("unsupported file type '.png'")
    assert found["gone.txt"].startswith("unreadable")
    assert found["plays.jsonl:3"].startswith("invalid JSON")
    assert "creator-b" in found["plays.jsonl:4"]
    assert found["templates.csv:4"] == "10 cells, the header has 9"
    assert not any("hidden" in issue.path for issue in report.skipped)
    assert not report.ok and "9 document(s) from 5 file(s), 12 skipped" in report.summary()
    assert all(issue.reason in report.summary() for issue in report.skipped)


def test_text_and_markdown_files() -> None:
    [guide] = read_path(FIXTURES / "kb" / "guide.md", tenant="creator-a", kind="editing ruleset").documents
    assert (guide.title, guide.format, guide.kind, guide.language) == (
        "Closing guide",
        "markdown",
        "EDITING_RULESET",
        None,
    )
    assert guide.text.startswith("# Closing guide\n\nHow a creator")
    [notes] = read_path(FIXTURES / "kb" / "notes.txt", tenant="creator-a", language="fr", niche="Lifestyle").documents
    assert (notes.title, notes.format, notes.language, notes.niche) == ("notes", "text", "fr", "lifestyle")


def test_closer_plays_are_rendered_with_their_tags_and_performance() -> None:
    documents, report = read_path(FIXTURES / "kb" / "plays.jsonl", tenant="creator-a")
    assert [d.id for d in documents] == ["play-1", "play-2", "play-5"]
    first = documents[0]
    assert first.text == (
        "Fan: Tu fais des vidéos personnalisées ?\n"
        "Creator: Oui ! Dis-moi ce qui te ferait plaisir et je te propose un prix 😊"
    )
    assert first.text == render_closer_play("Tu fais des vidéos personnalisées ?", first.text.split("Creator: ")[1])
    assert first.kind == Kind.CHAT_CLOSER_PLAY and first.language == "fr"
    assert first.tags == ("custom", "upsell")
    assert first.performance == Performance(conversions=3, revenue=42.0)
    assert documents[1].platform == "onlyfans" and documents[1].performance == Performance(
        score=0.8, conversions=1, revenue=15.5
    )
    assert documents[2].kind == Kind.CHAT_CLOSER_PLAY  # "chat closer play" in the record
    assert [(i.line, i.record) for i in report.skipped] == [(3, None), (4, None)]


def test_record_fields_override_the_defaults_and_the_rest_is_metadata() -> None:
    documents, report = read_path(FIXTURES / "kb" / "structures.json", tenant="creator-a", kind="TREND_TEMPLATE")
    hook, before_after = documents
    assert hook.kind == before_after.kind == Kind.VIRAL_STRUCTURE  # the records' own kind wins
    assert hook.text == "Hook: Start with the result, then show how.\nStructure: result; steps; call to action"
    assert hook.metadata == {"views": 120000} and hook.title == "Three-second hook"
    assert before_after.niche == "fitness"
    assert [(i.record, i.reason.split(":")[0]) for i in report.skipped] == [
        (3, "a record must be an object, not str"),
        (4, "no text"),
    ]


def test_csv_columns_map_to_fields() -> None:
    documents, report = read_path(FIXTURES / "kb" / "templates.csv", tenant="creator-a", platform="youtube")
    weekend, monday = documents
    assert weekend.kind == Kind.TREND_TEMPLATE and weekend.language == "en" and weekend.platform == "tiktok"
    assert weekend.tags == ("sound", "cut") and weekend.metadata == {"campaign": "summer"}
    assert weekend.performance == Performance(conversions=2, revenue=30.5)
    assert monday.performance is None and monday.language == "fr" and monday.metadata == {"campaign": "rentrée"}
    assert [(i.line, i.record) for i in report.skipped] == [(4, 3)]


def test_csv_dialects_and_empty_tables(tmp_path: Path) -> None:
    (tmp_path / "fr.csv").write_text("Titre;TEXT;Niche\nOffre;Deux formules, un prix;Mode\n", encoding="utf-8-sig")
    (tmp_path / "tabs.tsv").write_text("text\tscore\nHello there\t0.5\n")
    (tmp_path / "header-only.csv").write_text("text,title\n")
    (tmp_path / "bad-number.csv").write_text("text,revenue\nFine,12\nBad,-3\n")
    documents, report = read_path(tmp_path, tenant="c")
    texts = {d.text: d for d in documents}
    assert texts["Deux formules, un prix"].niche == "mode" and texts["Deux formules, un prix"].metadata == {
        "Titre": "Offre"
    }
    assert texts["Hello there"].performance == Performance(score=0.5)
    assert "Fine" in texts
    found = reasons(report)
    assert found["header-only.csv"].startswith("empty file")
    assert "revenue" in found["bad-number.csv:3"]


def test_json_object_files_are_one_document_whose_id_survives_edits(tmp_path: Path) -> None:
    path = tmp_path / "rule.json"
    path.write_text('{"text": "Cut on the beat.", "kind": "EDITING_RULESET", "tenant": "c"}')
    [first] = read_path(path, tenant="c").documents
    path.write_text('{"text": "Cut on the beat, always.", "kind": "EDITING_RULESET"}')
    [second] = read_path(path, tenant="c").documents
    assert first.id == second.id and first.text != second.text
    markdown = tmp_path / "guide.md"
    markdown.write_text("# Guide\n\nOne.")
    [before] = read_path(markdown, tenant="c").documents
    markdown.write_text("# Guide\n\nTwo.")
    [after] = read_path(markdown, tenant="c").documents
    assert before.id == after.id
    [other_tenant] = read_path(markdown, tenant="d").documents
    assert other_tenant.id != after.id
    (tmp_path / "number.json").write_text("42")
    assert (
        "expected an object or a list" in reasons(read_path(tmp_path / "number.json", tenant="c").report)["number.json"]
    )


def test_jsonl_lines_are_read_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [
        b'{"text": "first"}',
        b"",
        '{"text": "caf\u00e9"}'.encode("latin-1"),
        b'["not", "an", "object"]',
        b'{"text": "fourth", "performance": {"revenue": "lots"}}',
        b'{"text": "fifth", "tags": "a; b | c"}',
        b'{"text": "first"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    documents, report = read_path(path, tenant="c")
    assert [d.text for d in documents] == ["first", "fifth"]
    assert documents[1].tags == ("a", "b", "c")
    found = {issue.line: issue.reason for issue in report.skipped}
    assert list(found) == [3, 4, 5, 7]
    assert found[3].startswith("not UTF-8") and found[4].startswith("a record must be an object")
    assert "revenue" in found[5] and found[7].startswith("duplicate document id")


def test_the_callers_tenant_wins_and_foreign_records_are_rejected() -> None:
    records: list[Any] = [
        {"id": "mine", "text": "Mine.", "tenant": "creator-a"},
        {"id": "theirs", "text": "Theirs.", "tenant": "creator-b"},
        {"id": "shared", "text": "For everyone.", "creator_id": SHARED},
        {"id": "unclaimed", "text": "No tenant given.", "creator_id": None},
        Document(id="doc-a", tenant="creator-a", text="A document."),
        Document(id="doc-b", tenant="creator-b", text="Another's document."),
    ]
    documents, report = documents_from_objects(records, tenant="creator-a", source="api")
    assert [d.id for d in documents] == ["mine", "unclaimed", "doc-a"]
    assert all(d.tenant == "creator-a" for d in documents)
    assert [(i.path, i.record) for i in report.skipped] == [("api", 2), ("api", 3), ("api", 6)]
    assert "tenant 'creator-b', not to 'creator-a'" in report.skipped[0].reason
    shared, shared_report = documents_from_objects(records[:2], tenant=SHARED)
    assert not shared and len(shared_report.skipped) == 2
    numeric, numeric_report = documents_from_objects([{"text": "Hi.", "creator_id": 42}], tenant="42")
    assert numeric_report.ok and numeric[0].tenant == "42"


def test_objects_are_mapped_like_records() -> None:
    objects: list[Any] = [
        {"fan_message": "Price?", "creator_reply": "Ten for you.", "score": 0.9, "lang": "en", "Mood": "warm"},
        {"fan_message": "Only half a play"},
        {"text": "Trend.", "performance": {"revenue": 5, "views": 100}, "metadata": {"a": 1}},
        {"text": ""},
        "a string",
    ]
    documents, report = documents_from_objects(objects, tenant="c", kind="analytics playbook", language="fr")
    play, trend = documents
    assert play.text == "Fan: Price?\nCreator: Ten for you." and play.kind == Kind.ANALYTICS_PLAYBOOK
    assert play.performance == Performance(score=0.9) and play.language == "en" and play.metadata == {"Mood": "warm"}
    assert trend.language == "fr" and trend.metadata == {"a": 1, "performance_extra": {"views": 100}}
    assert [i.record for i in report.skipped] == [2, 4, 5]
    assert "fan_message and creator_reply" in report.skipped[0].reason
    assert str(report.skipped[0]) == f"<objects> (record 2): {report.skipped[0].reason}"


def test_the_beir_layout(tmp_path: Path) -> None:
    documents, report = read_path(FIXTURES / "beir", tenant=SHARED, kind="benchmark")
    assert report.ok and report.files == 1
    assert [(d.id, d.title, d.text) for d in documents] == [
        ("d1", "Vitamin D", "Vitamin D Vitamin D supplements reduce the risk of fractures in older adults."),
        ("d2", None, "Regular exercise improves sleep quality."),
        ("d3", "Coffee", "Coffee Coffee consumption is associated with lower mortality."),
    ]
    assert {d.kind for d in documents} == {"BENCHMARK"}
    # A BEIR folder nested in a knowledge base: only its corpus is read.
    shutil.copytree(FIXTURES / "beir", tmp_path / "datasets" / "tiny")
    (tmp_path / "readme.md").write_text("# Datasets\n\nEvaluation only.")
    nested, nested_report = read_path(tmp_path, tenant=SHARED)
    assert {"d1", "d2", "d3"} < {d.id for d in nested} and len(nested) == 4 and nested_report.ok


def test_caller_mistakes_raise_at_once(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="no such file"):
        read_path(tmp_path / "missing", tenant="c")
    with pytest.raises(BadRequestError, match="tenant"):
        iter_path(tmp_path, tenant="")  # raised by the call, not at the first document
    with pytest.raises(BadRequestError, match="kind"):
        read_path(tmp_path, tenant="c", kind="???")
    with pytest.raises(BadRequestError, match="language"):
        documents_from_objects([], tenant="c", language="42")


def test_progress_is_reported_in_bytes(kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[int, int]] = []
    report = IngestReport()
    documents = list(iter_path(kb, tenant="creator-a", report=report, progress=lambda d, t: calls.append((d, t))))
    assert len(documents) == report.documents == 9
    total = calls[-1][1]
    assert calls[-1] == (total, total) and total > 1000
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(read_path(kb, tenant="creator-a", progress=True).documents) == 9  # a tqdm bar on stderr
    if importlib.util.find_spec("tqdm") is not None:
        assert "reading" in capsys.readouterr().err


def test_issues_print_their_location() -> None:
    assert str(IngestIssue("a.jsonl", "invalid JSON", line=3)) == "a.jsonl:3: invalid JSON"
    assert str(IngestIssue("a.csv", "10 cells", line=4, record=3)) == "a.csv:4 (record 3): 10 cells"
