"""Token-aware chunking: documents in, :class:`~majordome.knowledge.documents.Chunk` s out.

Tokens are ``cl100k_base`` (tiktoken, offline through :mod:`majordome.models.tokens`). The
default budget, 256 tokens, follows the default embedder: all-MiniLM-L6-v2 truncates its input at
256 word pieces (254 of text). Its WordPiece is a little denser than cl100k: measured on the
retrieval sets, a median 1.05x as many tokens on SciFact (English) and 1.09x on PIAF (French),
1.11x and 1.17x at the 90th percentile. So a full 256-token chunk may lose its last 5 to 10 % to
the embedder's truncation (when a chunk ends inside a paragraph, the 32-token overlap repeats its
tail at the head of the next chunk).
``max_tokens=216`` avoids truncation for nine chunks in ten; another embedder wants its own window.

How a document is cut, structure first:

1. **Sections**: a Markdown document (``format="markdown"``) is split at ATX (``#``) and setext
   (``===``/``---``) headings outside fenced code; each chunk belongs to one section and carries
   its heading path. The heading lines themselves are not in the chunk's ``text``: the path is
   the chunk's ``context``, put in front of the text for embedding (see below).
2. **Paragraphs** (blank-line separated; a fenced code block is one paragraph) are packed
   whole, greedily, up to the budget; a chunk ends at a paragraph boundary unless a paragraph is
   larger than the budget on its own.
3. Such a paragraph is cut into **sentences** (after ``. ! ? …`` and at line breaks), and a
   sentence larger than the budget into **token windows** (the last resort; cuts at token
   boundaries, snapped to whole characters).
4. **Overlap**: a chunk starts with the trailing sentences (or windows) of the previous chunk of
   the same section, as many as fit in ``overlap`` tokens; never across sections or documents.

The **context** of a chunk is the document title (when ``prefix_title`` and the chunk's text
does not already start with it, and it is not already the first heading) followed by the heading
path, joined by ``" > "``, capped at a quarter of the budget. ``embedding_text`` = context, blank
line, text; its token count, not the bare text's, is what stays within ``max_tokens``.

Every document is chunked on its own, so JSON/CSV records (one document each) are never merged.
Time is linear in the text: the document is tokenised once (pieces are counted from that), and
each chunk once more for its exact count. A huge document is chunked, not refused: 5 MB of prose
takes 2 to 4 seconds on a 2-core machine (tiktoken's encoding is most of it).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from majordome._errors import ConfigurationError
from majordome.knowledge.documents import Chunk, Document
from majordome.models.tokens import _get_encoder

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_OVERLAP", "Chunker", "chunk_document"]

DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP = 32
_MIN_MAX_TOKENS = 16
_PIECE_MARGIN = 4  # tokens kept free when cutting pieces, so that a piece alone always fits
_CONTEXT_SEPARATOR = " > "

_ATX_RE = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t\r]*")
_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SETEXT_RE = re.compile(r" {0,3}(=+|-+)[ \t\r]*")
# A sentence ends after . ! ? … (and closing quotes/brackets) followed by white space, or at a line
# break; the match includes the white space after it (the sentence's span is trimmed).
_SENTENCE_BREAK_RE = re.compile(r"(?:[.!?…][\"'»”’)\]]*[ \t]|\n)\s*")
_LINE_BREAK_RE = re.compile(r"\n")
_THEMATIC_BREAK_RE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t\r]*")


class _Tokeniser(Protocol):
    n_vocab: int

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_single_token_bytes(self, token: int) -> bytes: ...


def _tokeniser() -> _Tokeniser:
    # tiktoken's Encoding, loaded offline by majordome.models.tokens.
    return cast(_Tokeniser, _get_encoder())


def _count(text: str) -> int:
    return len(_tokeniser().encode_ordinary(text)) if text else 0


@functools.cache
def _token_lengths() -> np.ndarray:
    """Bytes of each token id (0 for ids that are not tokens)."""
    tokeniser = _tokeniser()
    lengths = np.zeros(tokeniser.n_vocab, dtype=np.int64)
    for token in range(tokeniser.n_vocab):
        try:
            lengths[token] = len(tokeniser.decode_single_token_bytes(token))
        except KeyError:
            continue
    return lengths


def _decode(tokens: list[int]) -> str:
    tokeniser = _tokeniser()
    return b"".join(tokeniser.decode_single_token_bytes(t) for t in tokens).decode("utf-8", errors="ignore")


class _TokenIndex:
    """A text tokenised once, to count the tokens of any span and cut spans at token boundaries
    in O(log n), without encoding each piece again (which costs ~40 µs a call)."""

    def __init__(self, text: str) -> None:
        tokens = np.asarray(_tokeniser().encode_ordinary(text), dtype=np.int64)
        self.byte_ends = np.cumsum(_token_lengths()[tokens]) if tokens.size else np.zeros(0, dtype=np.int64)
        if text.isascii():
            self.char_bytes: np.ndarray | None = None
        else:  # byte offset of each character offset (0..len)
            points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            sizes = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)
            self.char_bytes = np.concatenate(([0], np.cumsum(sizes)))

    def to_bytes(self, chars: np.ndarray) -> np.ndarray:
        return chars if self.char_bytes is None else self.char_bytes[chars]

    def to_chars(self, byte_offsets: np.ndarray) -> np.ndarray:
        """The first character offset at or after each byte offset."""
        if self.char_bytes is None:
            return byte_offsets
        return np.searchsorted(self.char_bytes, byte_offsets, side="left")

    def counts(self, starts: Sequence[int], ends: Sequence[int]) -> list[int]:
        """Tokens ending inside each span (start, end]: about the span's own token count."""
        first = np.searchsorted(self.byte_ends, self.to_bytes(np.asarray(starts, dtype=np.int64)), side="right")
        last = np.searchsorted(self.byte_ends, self.to_bytes(np.asarray(ends, dtype=np.int64)), side="right")
        result: list[int] = (last - first).tolist()
        return result

    def cuts(self, start: int, end: int, size: int) -> list[int]:
        """Character offsets inside (start, end) after every ``size`` tokens of the span."""
        lo, hi = self._token_range(start, end)
        if hi - lo <= size:
            return []
        positions = self.to_chars(self.byte_ends[lo + size - 1 : hi - 1 : size])
        return sorted({int(p) for p in positions if start < p < end})

    def _token_range(self, start: int, end: int) -> tuple[int, int]:
        """Index of the first and one past the last token ending inside (start, end]."""
        bounds = self.to_bytes(np.asarray([start, end], dtype=np.int64))
        lo, hi = np.searchsorted(self.byte_ends, bounds, side="right")
        return int(lo), int(hi)


@dataclass(slots=True)
class _Section:
    headings: tuple[str, ...]
    blocks: list[tuple[int, int, bool]]  # (start, end, is_code): paragraphs and fenced code


def _lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line, end excluding the newline."""
    pos, size = 0, len(text)
    while pos < size:
        end = text.find("\n", pos)
        if end < 0:
            end = size
        yield pos, end
        pos = end + 1


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sections(text: str, markdown: bool) -> list[_Section]:
    """Split into sections (Markdown headings) of blocks (paragraphs, fenced code)."""
    sections = [_Section((), [])]
    stack: list[tuple[int, str]] = []
    para: list[int] | None = None  # [start, end] of the open paragraph
    fence: str | None = None
    code_start = 0

    def close() -> None:
        nonlocal para
        if para is not None:
            start, end = _trim(text, para[0], para[1])
            if start < end:
                sections[-1].blocks.append((start, end, False))
            para = None

    def heading(level: int, title: str) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        if title:
            stack.append((level, title))
        sections.append(_Section(tuple(h for _, h in stack), []))

    for start, end in _lines(text):
        line = text[start:end]
        if markdown and fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                sections[-1].blocks.append((code_start, end, True))
                fence = None
            continue
        if not line.strip():
            close()
            continue
        if markdown:
            if match := _FENCE_RE.match(line):
                close()
                fence, code_start = match.group(1), start
                continue
            if match := _ATX_RE.fullmatch(line):
                close()
                heading(len(match.group(1)), (match.group(2) or "").strip())
                continue
            if para is not None and (match := _SETEXT_RE.fullmatch(line)):
                title = " ".join(text[para[0] : para[1]].split())
                para = None
                heading(1 if match.group(1)[0] == "=" else 2, title)
                continue
            if _THEMATIC_BREAK_RE.fullmatch(line):
                close()
                continue
        if para is None:
            para = [start, end]
        else:
            para[1] = end
    if fence is not None:  # an unclosed fence runs to the end
        start, end = _trim(text, code_start, len(text))
        sections[-1].blocks.append((start, end, True))
    close()
    return [section for section in sections if section.blocks]


class Chunker:
    """Cuts documents into chunks of at most ``max_tokens`` tokens (context included).

    ``overlap`` tokens of the previous chunk (whole sentences or windows) start the next one in
    the same section; ``prefix_title`` puts the document title in each chunk's context. Invalid
    settings raise :class:`~majordome._errors.ConfigurationError`.
    """

    def __init__(
        self, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP, *, prefix_title: bool = True
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < _MIN_MAX_TOKENS:
            raise ConfigurationError(f"max_tokens must be an integer >= {_MIN_MAX_TOKENS}, not {max_tokens!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= max_tokens // 2:
            raise ConfigurationError(
                f"overlap must be an integer between 0 and max_tokens // 2 ({max_tokens // 2}), not {overlap!r}"
            )
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.prefix_title = prefix_title

    def __repr__(self) -> str:
        return f"Chunker(max_tokens={self.max_tokens}, overlap={self.overlap}, prefix_title={self.prefix_title})"

    def chunk(self, document: Document) -> list[Chunk]:
        """The chunks of one document, in order (``index`` 0, 1, …)."""
        text = document.text
        index = _TokenIndex(text)
        spans: list[tuple[int, int, tuple[str, ...], str, int]] = []
        for section in _sections(text, document.format == "markdown"):
            context = self._context(document.title, section.headings)
            spans.extend(self._chunk_section(text, index, section, context))
        if not spans:  # only headings: chunk the text as it is
            for section in _sections(text, markdown=False):
                spans.extend(self._chunk_section(text, index, section, self._context(document.title, ())))
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for number, (start, end, headings, context, tokens) in enumerate(spans):
            body = text[start:end]
            embedding_text = f"{context}\n\n{body}" if context else body
            occurrence = seen.get(embedding_text, 0)
            seen[embedding_text] = occurrence + 1
            chunks.append(
                Chunk(
                    id=Chunk.make_id(document.tenant, document.id, embedding_text, occurrence),
                    document_id=document.id,
                    index=number,
                    text=body,
                    token_count=tokens,
                    start=start,
                    end=end,
                    tenant=document.tenant,
                    kind=document.kind,
                    heading_path=headings,
                    context=context,
                    title=document.title,
                    language=document.language,
                    niche=document.niche,
                    platform=document.platform,
                    source=document.source,
                    tags=document.tags,
                    performance=document.performance,
                    metadata=document.metadata,
                )
            )
        return chunks

    def chunk_many(self, documents: Iterable[Document]) -> Iterator[Chunk]:
        """The chunks of each document in turn (lazily)."""
        for document in documents:
            yield from self.chunk(document)

    # -- context -------------------------------------------------------------------------------

    def _context(self, title: str | None, headings: tuple[str, ...]) -> str:
        """Title and heading path, joined by " > ", at most a quarter of the budget."""
        parts = list(headings)
        if self.prefix_title and title and (not parts or parts[0] != title):
            parts.insert(0, title)
        if not parts:
            return ""
        cap = self.max_tokens // 4
        context = _CONTEXT_SEPARATOR.join(parts)
        while _count(context) > cap and len(parts) > 1:
            parts.pop(0)
            context = "…" + _CONTEXT_SEPARATOR + _CONTEXT_SEPARATOR.join(parts)
        if _count(context) > cap:
            context = _decode(_tokeniser().encode_ordinary(context)[: cap - 1]).strip() + "…"
        return context

    # -- one section ---------------------------------------------------------------------------

    def _chunk_section(
        self, text: str, index: _TokenIndex, section: _Section, context: str
    ) -> Iterator[tuple[int, int, tuple[str, ...], str, int]]:
        """(start, end, headings, context, token count) of each chunk of the section."""
        # The budget for the text: the context and its blank line (one token) are set aside,
        # and a small margin for pieces, since a text's tokens are not exactly the sum of its pieces'.
        budget = self.max_tokens - (_count(context) + 1 if context else 0)
        units = self._units(text, index, section, max(1, budget - _PIECE_MARGIN))
        for start, end, context_used, tokens in self._pack(text, units, budget, context):
            yield start, end, section.headings, context_used, tokens

    def _units(self, text: str, index: _TokenIndex, section: _Section, cap: int) -> _Units:
        """Sentences (lines of code) of each block, cut into windows when over ``cap`` tokens."""
        starts: list[int] = []
        ends: list[int] = []
        blocks: list[int] = []
        for number, (start, end, is_code) in enumerate(section.blocks):
            for sentence_start, sentence_end in _sentences(text, start, end, is_code):
                starts.append(sentence_start)
                ends.append(sentence_end)
                blocks.append(number)
        tokens = index.counts(starts, ends)
        if max(tokens, default=0) <= cap:
            return _Units(starts, ends, tokens, blocks)
        window = min(cap, max(8, self.overlap // 2) if self.overlap else cap)
        units = _Units([], [], [], [])
        for start, end, count, block in zip(starts, ends, tokens, blocks, strict=True):
            if count <= cap:
                units.add(start, end, count, block)
                continue
            bounds = [start, *index.cuts(start, end, window), end]
            pieces = [_trim(text, a, b) for a, b in itertools.pairwise(bounds)]
            pieces = [(a, b) for a, b in pieces if a < b]
            counts = index.counts([a for a, _ in pieces], [b for _, b in pieces])
            for (piece_start, piece_end), piece_count in zip(pieces, counts, strict=True):
                units.add(piece_start, piece_end, piece_count, block)
        return units

    def _pack(self, text: str, units: _Units, budget: int, context: str) -> Iterator[tuple[int, int, str, int]]:
        """Greedy packing of units into chunks, paragraphs kept whole where they fit:
        (start, end, context, exact token count) of each."""
        plan = _Plan(text, units)
        starts, ends = units.starts, units.ends
        i = 0
        previous = -1
        while i < plan.n:
            s = i
            if previous >= 0 and self.overlap:
                while s - 1 > previous and plan.estimate(s - 1, i) <= self.overlap:
                    s -= 1
            s, e = plan.extend(s, i, budget)
            # The exact count, context included; the estimate is nearly always right.
            while True:
                body = text[starts[s] : ends[e - 1]]
                used = "" if context and body.startswith(context) else context
                tokens = _count(f"{used}\n\n{body}" if used else body)
                if tokens <= self.max_tokens:
                    break
                if e - 1 > i:
                    e -= 1
                elif s < i:
                    s = i
                else:  # one unit alone overflows: halve it
                    plan.split(i)
                    e = i + 1
            yield starts[s], ends[e - 1], used, tokens
            previous, i = s, e


@dataclass(slots=True)
class _Units:
    """The pieces of one section, in order: spans of the text, their tokens, their block."""

    starts: list[int]
    ends: list[int]
    tokens: list[int]
    block: list[int]

    def add(self, start: int, end: int, tokens: int, block: int) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.tokens.append(tokens)
        self.block.append(block)


class _Plan:
    """Running sums over a section's units, for O(1) token estimates of any range."""

    def __init__(self, text: str, units: _Units) -> None:
        self.text = text
        self.units = units
        self.n = 0
        self.running: list[int] = []
        self.gaps: list[int] = []
        self.block_start: list[int] = []
        self.block_end: list[int] = []
        self._build()

    def _build(self) -> None:
        text, units = self.text, self.units
        starts, ends, tokens, block = units.starts, units.ends, units.tokens, units.block
        n = self.n = len(starts)
        # A gap of nothing or one space merges into the next token; a line break or blank line
        # is (about) a token of its own.
        gaps = self.gaps = [0] * n
        running = self.running = [0] * (n + 1)
        for k in range(n):
            if k and text[ends[k - 1] : starts[k]] not in ("", " "):
                gaps[k] = 1
            running[k + 1] = running[k] + tokens[k] + gaps[k]
        self.block_start = block_start = [0] * n
        for k in range(1, n):
            block_start[k] = block_start[k - 1] if block[k - 1] == block[k] else k
        self.block_end = block_end = [n] * n
        for k in range(n - 2, -1, -1):
            block_end[k] = block_end[k + 1] if block[k + 1] == block[k] else k + 1

    def estimate(self, s: int, e: int) -> int:
        """Estimated tokens of units ``s`` to ``e - 1`` with the gaps between them."""
        return self.running[e] - self.running[s] - self.gaps[s]

    def extend(self, s: int, i: int, budget: int) -> tuple[int, int]:
        """The range of the chunk that may start at ``s`` (overlap) and takes new units from ``i``."""
        e = i
        while e < self.n:
            group_end = self.block_end[e]
            if self.estimate(s, group_end) <= budget:
                e = group_end
                continue
            whole = self.block_start[e] == e and self.estimate(e, group_end) <= budget
            if whole:  # a paragraph that fits a chunk on its own is never cut
                return (s, e) if e > i else (i, group_end)
            # A paragraph larger than the budget: fill with its sentences (without the overlap
            # if even one does not fit with it).
            for start in (s, i):
                s = start
                while e < group_end and self.estimate(s, e + 1) <= budget:
                    e += 1
                if e > i:
                    return s, e
            return i, i + 1
        return s, e

    def split(self, k: int) -> None:
        """Replace unit ``k`` by two halves (its exact count overflowed: rare)."""
        units, text = self.units, self.text
        start, end = units.starts[k], units.ends[k]
        middle = _middle(text, start, end)
        halves = [_trim(text, start, middle), _trim(text, middle, end)]
        units.starts[k : k + 1] = [h[0] for h in halves]
        units.ends[k : k + 1] = [h[1] for h in halves]
        units.tokens[k : k + 1] = [_count(text[a:b]) for a, b in halves]
        units.block[k : k + 1] = [units.block[k]] * 2
        self._build()


def _middle(text: str, start: int, end: int) -> int:
    """A cut near the middle of a span, at white space when there is some."""
    middle = (start + end) // 2
    space = text.rfind(" ", start + 1, middle + 1)
    if space > start:
        return space
    if middle <= start:
        raise RuntimeError("a chunk cannot be made small enough")  # pragma: no cover - max_tokens >= 16
    return middle


def _sentences(text: str, start: int, end: int, is_code: bool) -> list[tuple[int, int]]:
    """Spans of the sentences (lines, for code) of ``text[start:end]``, white space trimmed."""
    pattern = _LINE_BREAK_RE if is_code else _SENTENCE_BREAK_RE
    spans = []
    position = start
    for match in pattern.finditer(text, start, end):
        spans.append(_trim(text, position, match.end()))
        position = match.end()
    if position < end:
        spans.append(_trim(text, position, end))
    return [(a, b) for a, b in spans if a < b]


def chunk_document(
    document: Document, *, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """The chunks of ``document`` with a :class:`Chunker` of these settings (see the module docstring)."""
    return Chunker(max_tokens, overlap).chunk(document)
