from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from majordome._errors import ConfigurationError
from majordome.knowledge import chunking
from majordome.knowledge.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, Chunker, chunk_document
from majordome.knowledge.documents import Chunk, Document
from majordome.knowledge.sources import documents_from_objects, read_path
from majordome.models.tokens import count_tokens

FIXTURES = Path(__file__).parent / "fixtures"


def sentences(count: int, topic: str = "pricing", seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["bundle", "offer", "fan", "message", "price", "reply", "creator", "video", "story", "tonight"]
    return " ".join(
        f"Sentence {i} about {topic} says {' '.join(rng.choice(words) for _ in range(rng.randint(3, 12)))}."
        for i in range(count)
    )


def check_invariants(document: Document, chunks: list[Chunk], max_tokens: int) -> None:
    """Every chunk is a slice of the text within the budget, and together they cover it."""
    assert chunks and [c.index for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(document.text))
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text and chunk.text.strip()
        assert chunk.token_count == count_tokens(chunk.embedding_text) <= max_tokens
        assert chunk.document_id == document.id and chunk.tenant == document.tenant
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    if document.format == "text":
        assert all(covered[i] or ch.isspace() for i, ch in enumerate(document.text))
    assert len({c.id for c in chunks}) == len(chunks)


def test_defaults_fit_the_default_embedder() -> None:
    assert (DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP) == (256, 32)
    with pytest.raises(ConfigurationError, match="max_tokens"):
        Chunker(max_tokens=8)
    with pytest.raises(ConfigurationError, match="overlap"):
        Chunker(max_tokens=64, overlap=40)
    with pytest.raises(ConfigurationError, match="overlap"):
        Chunker(overlap=-1)


def test_markdown_chunks_carry_their_heading_path() -> None:
    [guide] = read_path(FIXTURES / "kb" / "guide.md", tenant="creator-a").documents
    chunks = Chunker(max_tokens=64, overlap=8).chunk(guide)
    check_invariants(guide, chunks, 64)
    paths = [c.heading_path for c in chunks]
    assert paths == [
        ("Closing guide",),
        ("Closing guide", "Timing"),
        ("Closing guide", "Pricing", "Bundles"),
        ("Closing guide", "Pricing", "Discounts"),
    ]
    timing = chunks[1]
    assert timing.text.startswith("Wait until") and "## Timing" not in timing.text  # heading lines are context
    assert timing.context == "Closing guide > Timing"
    assert timing.embedding_text == "Closing guide > Timing\n\n" + timing.text
    assert timing.text.endswith("then offer.")  # the section's two paragraphs fit in one chunk


def test_no_chunk_crosses_a_heading() -> None:
    text = "\n\n".join(f"## Part {n}\n\n{sentences(30, f'part {n}', seed=n)}" for n in range(4))
    document = Document(tenant="t", text=text, format="markdown")
    chunks = Chunker(max_tokens=80, overlap=16).chunk(document)
    check_invariants(document, chunks, 80)
    for chunk in chunks:
        (part,) = chunk.heading_path
        assert f"about {part.lower()} " in chunk.text and "## " not in chunk.text


def test_headings_inside_fenced_code_are_code() -> None:
    text = "# Setup\n\n```sh\n# not a heading\n\necho hi\n```\n\nSetext title\n============\n\nBody."
    chunks = Chunker().chunk(Document(tenant="t", text=text, format="markdown"))
    assert [(c.heading_path, c.text) for c in chunks] == [
        (("Setup",), "```sh\n# not a heading\n\necho hi\n```"),
        (("Setext title",), "Body."),
    ]
    only_headings = Document(tenant="t", text="# Title\n## Subtitle", format="markdown")
    assert [c.text for c in Chunker().chunk(only_headings)] == ["# Title\n## Subtitle"]


def test_paragraphs_that_fit_are_never_cut() -> None:
    paragraphs = [sentences(random.Random(n).randint(1, 6), seed=n) for n in range(40)]
    document = Document(tenant="t", text="\n\n".join(paragraphs))
    chunks = Chunker(max_tokens=128, overlap=16).chunk(document)
    check_invariants(document, chunks, 128)
    for chunk in chunks:
        first, *others = chunk.text.split("\n\n")
        assert all(part in paragraphs for part in others)  # whole paragraphs, and the chunk ends at one's end
        assert any(p.endswith(first) for p in paragraphs)  # a whole paragraph, or the overlap: the end of one


def test_long_paragraphs_are_cut_at_sentences_with_overlap() -> None:
    document = Document(tenant="t", text=sentences(120))
    chunks = Chunker(max_tokens=100, overlap=24).chunk(document)
    check_invariants(document, chunks, 100)
    assert len(chunks) > 5
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.text.startswith("Sentence ") and previous.text.endswith(".")
        assert previous.start < chunk.start < previous.end  # the overlap: previous's last sentence(s)
        overlap = document.text[chunk.start : previous.end]
        assert 0 < count_tokens(overlap) <= 24
    no_overlap = Chunker(max_tokens=100, overlap=0).chunk(document)
    assert all(a.end < b.start for a, b in itertools.pairwise(no_overlap))


def test_token_windows_are_the_last_resort() -> None:
    for text in ("xq" * 20_000, "😀é中" * 3_000, "https://example.com/" + "a1b2c3/" * 4_000):
        document = Document(tenant="t", text=text)
        for overlap in (0, 16):
            chunks = Chunker(max_tokens=64, overlap=overlap).chunk(document)
            check_invariants(document, chunks, 64)
            assert min(c.token_count for c in chunks[:-1]) > 40  # windows fill the chunks


def test_every_chunk_fits_even_when_pieces_are_misjudged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pieces are cut with a safety margin; without it (here: a negative one), the exact count of
    # a single piece can overflow, and the chunker halves it until it fits.
    monkeypatch.setattr(chunking, "_PIECE_MARGIN", -60)
    rng = random.Random(0)
    text = " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(3000))
    document = Document(tenant="t", text=text, title="Some title")
    for overlap in (0, 16):
        check_invariants(document, Chunker(max_tokens=64, overlap=overlap).chunk(document), 64)


def test_random_texts_keep_every_invariant() -> None:
    rng = random.Random(7)
    alphabet = [*"abcdefgh  .,!?\n\n#-*`é€😀中", "\n\n", "# ", "## ", "```\n", "1234567", "---\n", "\r\n"]
    for _ in range(150):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500)))
        if not text.strip():
            continue
        max_tokens = rng.choice([16, 24, 64, 256])
        document = Document(
            tenant="t", text=text, format=rng.choice(["text", "markdown"]), title=rng.choice([None, "T", "A title"])
        )
        chunker = Chunker(max_tokens, rng.randint(0, max_tokens // 2), prefix_title=rng.random() < 0.5)
        check_invariants(document, chunker.chunk(document), max_tokens)


def test_the_title_is_context_unless_the_text_starts_with_it() -> None:
    # BEIR documents are "title text": the first chunk already starts with its title.
    document = Document(tenant="t", title="Vitamin D", text="Vitamin D " + sentences(60, "vitamin d"))
    chunks = Chunker(max_tokens=96, overlap=0).chunk(document)
    assert chunks[0].context == "" and chunks[0].embedding_text == chunks[0].text
    assert all(c.context == "Vitamin D" for c in chunks[1:])
    assert all(c.context == "" for c in Chunker(max_tokens=96, overlap=0, prefix_title=False).chunk(document))
    long_title = Document(tenant="t", title="A very long title " * 40, text=sentences(30))
    for chunk in Chunker(max_tokens=64, overlap=8).chunk(long_title):
        assert count_tokens(chunk.context) <= 16 and chunk.token_count <= 64


def test_records_are_never_merged() -> None:
    records = [{"id": f"r{n}", "text": f"Record {n} is short."} for n in range(5)]
    documents, report = documents_from_objects(records, tenant="t")
    assert report.ok
    chunks = list(Chunker().chunk_many(documents))
    assert [(c.document_id, c.text) for c in chunks] == [(f"r{n}", f"Record {n} is short.") for n in range(5)]


def test_rechunking_gives_the_same_ids() -> None:
    [guide] = read_path(FIXTURES / "kb" / "guide.md", tenant="creator-a").documents
    first = [c.id for c in Chunker(max_tokens=64).chunk(guide)]
    assert first == [c.id for c in Chunker(max_tokens=64).chunk(guide)]
    assert first == [c.id for c in chunk_document(guide, max_tokens=64)]
    other_tenant = guide.model_copy(update={"tenant": "creator-b"})
    assert not set(first) & {c.id for c in Chunker(max_tokens=64).chunk(other_tenant)}
    # The same text three times in a document: three chunks, three ids.
    repeated = Document(tenant="t", text="\n\n".join([sentences(8)] * 3))
    chunks = Chunker(max_tokens=160, overlap=0).chunk(repeated)
    assert len({c.text for c in chunks}) == 1 and len({c.id for c in chunks}) == 3


def test_an_edit_changes_only_the_ids_of_the_chunks_it_touches() -> None:
    sections = [
        f"## Part {n}\n\n" + "\n\n".join(sentences(6, f"part {n}", seed=10 * n + k) for k in range(4)) for n in range(4)
    ]
    before = Document(id="doc", tenant="t", text="\n\n".join(sections), format="markdown")
    chunker = Chunker(max_tokens=128, overlap=16)
    old = chunker.chunk(before)

    edited = sections.copy()
    edited[2] = edited[2].replace("about part 2", "about part 2 and nothing else", 1)
    changed = chunker.chunk(Document(id="doc", tenant="t", text="\n\n".join(edited), format="markdown"))
    old_ids = {c.id for c in old}
    new = [c for c in changed if c.id not in old_ids]
    assert new and all(c.heading_path == ("Part 2",) for c in new)
    kept = {c.id for c in old if c.heading_path != ("Part 2",)}
    assert kept <= {c.id for c in changed}

    # A new section in front moves every index, and keeps every id.
    inserted = Document(id="doc", tenant="t", text="## Intro\n\nNew words.\n\n" + before.text, format="markdown")
    moved = chunker.chunk(inserted)
    assert {c.id for c in moved} == old_ids | {moved[0].id}
    assert [c.index for c in moved[1:]] == [c.index + 1 for c in old]

    # Plain text: an edit of the same length in the middle leaves the chunks before and after alone.
    paragraphs = [sentences(5, seed=n) for n in range(30)]
    plain = chunker.chunk(Document(id="plain", tenant="t", text="\n\n".join(paragraphs)))
    paragraphs[15] = paragraphs[15].replace("Sentence 2 ", "Sentence 9 ", 1)
    replain = chunker.chunk(Document(id="plain", tenant="t", text="\n\n".join(paragraphs)))
    assert len(plain) == len(replain) and 1 <= sum(a.id != b.id for a, b in zip(plain, replain, strict=True)) <= 2


def test_a_five_megabyte_document_is_chunked_in_linear_time() -> None:
    rng = random.Random(1)
    words = ["l'équipe", "créateur", "fan", "message", "reply", "conversion", "42", "€", "the", "and", "de", "la"]
    paragraphs, size = [], 0
    while size < 5_000_000:
        paragraph = " ".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(5, 20))).capitalize() + "."
            for _ in range(rng.randint(1, 6))
        )
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    document = Document(tenant="t", text="\n\n".join(paragraphs))
    count_tokens("warm up the tokeniser")
    started = time.perf_counter()
    chunks = Chunker().chunk(document)
    elapsed = time.perf_counter() - started
    # About 2 s on a 2-core machine; a quadratic step would take minutes.
    assert elapsed < 30, elapsed
    assert len(chunks) > 5_000 and max(c.token_count for c in chunks) <= 256
    assert chunks[0].start == 0 and chunks[-1].end == len(document.text)
    sample = chunks[:: len(chunks) // 50]
    for chunk in sample:
        assert document.text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == count_tokens(chunk.embedding_text)
