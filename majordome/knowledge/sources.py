"""Readers: files, folders and Python objects in, :class:`~majordome.knowledge.documents.Document` s out.

:func:`read_path` reads a file, or a folder recursively (sorted, hidden entries skipped). A
document's ``source`` is its file's path as given (the folder given, joined with the file's path
in it), so read a knowledge base from the same place each time for stable ids.

- ``.txt``, ``.md``/``.markdown``: one document per file (Markdown ones are chunked by headings).
  Title: the first heading of a Markdown file, else the file name. Id: derived from tenant and
  path only, so that an edited file keeps its id and only the chunks whose text changed get new ids.
- ``.json``: an object (one record) or a list of records; ``.jsonl``: one record per line;
  ``.csv``/``.tsv``: one record per row under a header row (the delimiter is sniffed among
  ``, ; tab |``). Each record is one document.
- The BEIR layout: a folder holding ``corpus.jsonl`` (or that file itself): one document per line,
  id ``_id``, title ``title``, text ``title + " " + text`` (as the BEIR baselines embed them). The
  folder's other files (queries, qrels) are not knowledge and are not read.

**Records** (JSON objects, CSV rows, dicts given to :func:`documents_from_objects`) map their
fields as follows; names are matched case-insensitively.

- ``id``/``_id``: the document id (else one derived from tenant, source and text).
- ``text``, ``title``, ``kind``, ``language``/``lang``, ``niche``, ``platform``, ``source``,
  ``format``, ``tags`` (a list, or one string split on ``, ; |``), ``metadata`` (an object).
- ``performance`` (an object with ``score``, ``conversions``, ``revenue``), or those three as
  top-level fields/columns.
- A **closer play** (``fan_message`` and ``creator_reply``) is rendered as ``Fan: …`` and
  ``Creator: …`` lines (a ``text`` field, if any, follows as a paragraph); its kind defaults to
  ``CHAT_CLOSER_PLAY``.
- A record without ``text`` (and not a closer play) is rendered from its other text fields, one
  ``Label: value`` line each, in order; a record with nothing to render is rejected.
- Any other field goes to ``metadata``.

A record's ``kind``, ``language``, ``niche`` and ``platform`` override the defaults given to the
reader. **The tenant is the caller's**: a record may repeat it (``tenant`` or ``creator_id``),
but a record claiming another tenant (``"shared"`` included) is not read and is listed in the
report, so that one ingest can never write into another tenant's knowledge.

**Bad input never stops a batch.** An unreadable, empty, binary (NUL bytes) or non-UTF-8 file, a
malformed line or record, a duplicate document id: each is skipped and listed in the
:class:`IngestReport` (path, line or record number, reason); everything else is read. Only a
mistake of the caller (a missing path, an invalid tenant or default) raises
:class:`~majordome._errors.BadRequestError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from majordome._errors import BadRequestError
from majordome.knowledge.documents import (
    DEFAULT_KIND,
    Document,
    Kind,
    stable_id,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestIssue",
    "IngestReport",
    "ProgressCallback",
    "ReadResult",
    "documents_from_objects",
    "iter_path",
    "read_path",
    "render_closer_play",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".json", ".jsonl", ".csv", ".tsv")
BEIR_CORPUS = "corpus.jsonl"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes read so far, bytes to read in all) as files are read."""

_SNIFF_BYTES = 8192
_PROGRESS_EVERY = 1000  # records between progress calls inside one file
_TAG_SPLIT_RE = re.compile(r"[,;|]")
_PERFORMANCE_KEYS = ("score", "conversions", "revenue")
_FIELD_ALIASES = {"_id": "id", "lang": "language", "creator_id": "tenant"}
_KNOWN = frozenset(
    {"id", "text", "title", "kind", "language", "niche", "platform", "source", "format", "tenant", "tags"}
    | {"performance", "metadata", "fan_message", "creator_reply", *_PERFORMANCE_KEYS}
)
_EXTRA = "\x00extra"  # where csv.DictReader puts the cells of a row longer than the header


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestIssue:
    """One thing that was not read: where (``path``, ``line`` and/or ``record``, 1-based) and why."""

    path: str
    reason: str
    line: int | None = None
    record: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
        if self.record is not None:
            where += f" (record {self.record})"
        return f"{where}: {self.reason}"


@dataclass
class IngestReport:
    """What a read did: files read, documents made, and every skipped file or record."""

    files: int = 0
    documents: int = 0
    skipped: list[IngestIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was skipped."""
        return not self.skipped

    def skip(self, path: str, reason: str, *, line: int | None = None, record: int | None = None) -> None:
        """List one skipped file or record."""
        self.skipped.append(IngestIssue(path, reason, line, record))

    def summary(self) -> str:
        """One line, then one line per skipped item."""
        head = f"{self.documents} document(s) from {self.files} file(s), {len(self.skipped)} skipped"
        return "\n".join([head, *(f"  skipped {issue}" for issue in self.skipped)])


class ReadResult(NamedTuple):
    """The documents read, and the report of what was skipped (``documents, report = read_path(...)``)."""

    documents: list[Document]
    report: IngestReport


# -- records -------------------------------------------------------------------------------------


class _Rejected(Exception):
    """A record that cannot become a document; the message is the report's reason."""


@dataclass(frozen=True)
class _Defaults:
    tenant: str
    kind: str | None
    language: str | None
    niche: str | None
    platform: str | None

    @classmethod
    def check(
        cls, tenant: str, kind: str | None, language: str | None, niche: str | None, platform: str | None
    ) -> _Defaults:
        """The caller's settings, validated once (a bad one is the caller's mistake: raised)."""
        try:
            settings: dict[str, Any] = {"language": language, "niche": niche, "platform": platform}
            probe = Document(tenant=tenant, text="-", kind=kind or DEFAULT_KIND, **settings)
        except BadRequestError as exc:
            raise BadRequestError(str(exc).replace("invalid Document", "invalid reader settings")) from None
        return cls(probe.tenant, probe.kind if kind else None, probe.language, probe.niche, probe.platform)


def render_closer_play(fan_message: str, creator_reply: str) -> str:
    """A closer play as text: ``Fan: …`` and ``Creator: …`` lines (the labels are the same in every language)."""
    return f"Fan: {fan_message.strip()}\nCreator: {creator_reply.strip()}"


def _label(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _number(value: Any) -> Any:
    """CSV cells are strings: numbers become numbers, anything else is left to the validation."""
    if isinstance(value, str):
        text = value.strip()
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                continue
    return value


def _tags(value: Any) -> Any:
    if isinstance(value, str):
        return [tag for tag in (t.strip() for t in _TAG_SPLIT_RE.split(value)) if tag]
    return value


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _record_document(
    record: Mapping[str, Any], defaults: _Defaults, source: str | None, file_id: str | None
) -> Document:
    """One record as a document (see the module docstring); :class:`_Rejected` if it cannot be."""
    fields: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for raw_key, value in record.items():
        if not isinstance(raw_key, str):
            raise _Rejected(f"field names must be strings, not {type(raw_key).__name__}")
        key = raw_key.strip().lower()
        key = _FIELD_ALIASES.get(key, key)
        if not _present(value):
            continue
        if key in _KNOWN:
            if key in fields:
                raise _Rejected(f"field {key!r} given twice")
            fields[key] = value
        else:
            rest[raw_key] = value

    claimed = fields.pop("tenant", None)
    if claimed is not None and str(claimed).strip() != defaults.tenant:
        raise _Rejected(
            f"the record belongs to tenant {claimed!r}, not to {defaults.tenant!r} (the tenant of this ingest)"
        )

    metadata: dict[str, Any] = {}
    given = fields.pop("metadata", None)
    if given is not None:
        if not isinstance(given, Mapping):
            raise _Rejected(f"metadata must be an object, not {type(given).__name__}")
        metadata.update(given)

    performance: dict[str, Any] = {}
    given = fields.pop("performance", None)
    if given is not None:
        if not isinstance(given, Mapping):
            raise _Rejected(f"performance must be an object, not {type(given).__name__}")
        extra = {k: v for k, v in given.items() if k not in _PERFORMANCE_KEYS}
        if extra:
            metadata["performance_extra"] = extra
        performance.update({k: _number(v) for k, v in given.items() if k in _PERFORMANCE_KEYS and _present(v)})
    for key in _PERFORMANCE_KEYS:
        if key in fields:
            if key in performance:
                raise _Rejected(f"{key} given twice (top level and in performance)")
            performance[key] = _number(fields.pop(key))

    fan, reply = fields.pop("fan_message", None), fields.pop("creator_reply", None)
    text = fields.pop("text", None)
    if text is not None and not isinstance(text, str):
        raise _Rejected(f"text must be a string, not {type(text).__name__}")
    kind = fields.pop("kind", None) or defaults.kind
    if fan is not None or reply is not None:
        if not (isinstance(fan, str) and isinstance(reply, str)):
            raise _Rejected("a closer play needs both fan_message and creator_reply, as strings")
        play = render_closer_play(fan, reply)
        text = f"{play}\n\n{text.strip()}" if text else play
        kind = kind or Kind.CHAT_CLOSER_PLAY.value
    elif text is None:
        lines = []
        for key, value in list(rest.items()):
            if isinstance(value, str):
                lines.append(f"{_label(key)}: {value.strip()}")
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                lines.append(f"{_label(key)}: {'; '.join(v.strip() for v in value)}")
            else:
                continue
            del rest[key]
        if not lines:
            raise _Rejected("no text: the record has no 'text' field, no closer play and no other text field")
        text = "\n".join(lines)
    metadata.update(rest)

    identifier = fields.pop("id", None)
    if identifier is not None and not isinstance(identifier, str | int):
        raise _Rejected(f"id must be a string or an integer, not {type(identifier).__name__}")
    values: dict[str, Any] = {
        "id": str(identifier) if identifier is not None else (file_id or ""),
        "tenant": defaults.tenant,
        "kind": kind or DEFAULT_KIND,
        "text": text,
        "title": fields.pop("title", None),
        "language": fields.pop("language", None) or defaults.language,
        "niche": fields.pop("niche", None) or defaults.niche,
        "platform": fields.pop("platform", None) or defaults.platform,
        "source": fields.pop("source", None) or source,
        "format": fields.pop("format", "text"),
        "tags": _tags(fields.pop("tags", ())),
        "performance": performance or None,
        "metadata": metadata,
    }
    try:
        return Document(**values)
    except BadRequestError as exc:
        raise _Rejected(str(exc).removeprefix("invalid Document: ")) from None


# -- files ---------------------------------------------------------------------------------------


class _Batch:
    """One read: the defaults, the report, the ids seen (duplicates are skipped) and the progress."""

    def __init__(self, defaults: _Defaults, report: IngestReport, progress: ProgressCallback | None, total: int):
        self.defaults = defaults
        self.report = report
        self.progress = progress
        self.total = total
        self.done = 0
        self.seen: dict[str, str] = {}

    def advance(self, size: int) -> None:
        self.done += size
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)

    def accept(self, document: Document, where: str, *, line: int | None = None, record: int | None = None) -> bool:
        first = self.seen.get(document.id)
        if first is not None:
            self.report.skip(
                where, f"duplicate document id {document.id!r} (first read at {first})", line=line, record=record
            )
            return False
        location = where + (f":{line}" if line is not None else "") + (f" record {record}" if record else "")
        self.seen[document.id] = location
        self.report.documents += 1
        return True

    def record(
        self,
        record: Any,
        where: str,
        *,
        source: str | None,
        line: int | None = None,
        number: int | None = None,
        file_id: str | None = None,
    ) -> Document | None:
        if isinstance(record, Document):
            if record.tenant != self.defaults.tenant:
                self.report.skip(
                    where,
                    f"the document belongs to tenant {record.tenant!r}, not to {self.defaults.tenant!r}",
                    line=line,
                    record=number,
                )
                return None
            document = record
        elif isinstance(record, Mapping):
            try:
                document = _record_document(record, self.defaults, source, file_id)
            except _Rejected as exc:
                self.report.skip(where, str(exc), line=line, record=number)
                return None
        else:
            self.report.skip(
                where, f"a record must be an object, not {type(record).__name__}", line=line, record=number
            )
            return None
        return document if self.accept(document, where, line=line, record=number) else None


def _decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); :class:`_Rejected` if it is empty, binary or not UTF-8."""
    if b"\x00" in data:
        raise _Rejected("binary file (NUL bytes), or UTF-16/32 text: only UTF-8 is read")
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(data) - len(body)
        raise _Rejected(
            f"not UTF-8 (byte 0x{data[offset]:02x} at offset {offset}); re-encode the file as UTF-8"
        ) from None
    if not text.strip():
        raise _Rejected("empty file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Rejected(f"unreadable: {exc.strerror or exc}") from None


def _file_title(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip() or path.name


def _first_heading(text: str) -> str | None:
    for line in text.split("\n", 200)[:200]:
        match = re.fullmatch(r" {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*", line)
        if match:
            return match.group(1).strip()
    return None


def _read_text(path: Path, where: str, batch: _Batch, markdown: bool) -> Iterator[Document]:
    text = _decode(_read_bytes(path))
    title = (_first_heading(text) if markdown else None) or _file_title(path)
    record = {"text": text, "title": title, "format": "markdown" if markdown else "text"}
    file_id = stable_id("file", batch.defaults.tenant, where)
    document = batch.record(record, where, source=where, file_id=file_id)
    if document is not None:
        yield document


def _read_json(path: Path, where: str, batch: _Batch) -> Iterator[Document]:
    text = _decode(_read_bytes(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Rejected(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if isinstance(data, dict):
        file_id = stable_id("file", batch.defaults.tenant, where)
        document = batch.record(data, where, source=where, file_id=file_id)
        if document is not None:
            yield document
        return
    if not isinstance(data, list):
        raise _Rejected(f"expected an object or a list of objects, not {type(data).__name__}")
    if not data:
        raise _Rejected("empty file (an empty list)")
    for number, item in enumerate(data, 1):
        document = batch.record(item, where, source=where, number=number)
        if document is not None:
            yield document


def _jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            if b"\x00" in head:
                raise _Rejected("binary file (NUL bytes), or UTF-16/32 text: only UTF-8 is read")
            handle.seek(0)
            yield from enumerate(handle, 1)
    except OSError as exc:
        raise _Rejected(f"unreadable: {exc.strerror or exc}") from None


def _read_jsonl(path: Path, where: str, batch: _Batch, beir: bool) -> Iterator[Document]:
    records = 0
    pending = 0
    for line_number, raw in _jsonl_lines(path):
        pending += len(raw)
        if not raw.strip():
            continue
        records += 1
        if records % _PROGRESS_EVERY == 0:
            batch.advance(pending)
            pending = 0
        try:
            line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            batch.report.skip(where, f"not UTF-8 (byte 0x{raw[exc.start]:02x})", line=line_number)
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            batch.report.skip(where, f"invalid JSON: {exc.msg} (column {exc.colno})", line=line_number)
            continue
        if beir:
            item = _beir_record(item, where, line_number, batch)
            if item is None:
                continue
        document = batch.record(item, where, source=where, line=line_number)
        if document is not None:
            yield document
    batch.advance(pending)
    if records == 0:
        raise _Rejected("empty file")


def _beir_record(item: Any, where: str, line: int, batch: _Batch) -> dict[str, Any] | None:
    """A BEIR corpus line as a record: id ``_id``, text ``title + " " + text``."""
    if not isinstance(item, dict):
        batch.report.skip(where, f"a record must be an object, not {type(item).__name__}", line=line)
        return None
    identifier, title, text = item.get("_id"), item.get("title") or "", item.get("text") or ""
    if not isinstance(identifier, str | int) or not str(identifier).strip():
        batch.report.skip(where, "a BEIR record needs an _id", line=line)
        return None
    if not isinstance(title, str) or not isinstance(text, str):
        batch.report.skip(where, "a BEIR record's title and text must be strings", line=line)
        return None
    record = {k: v for k, v in item.items() if k not in ("_id", "title", "text")}
    record.update(id=str(identifier), title=title.strip() or None, text=f"{title} {text}".strip())
    return record


def _read_csv(path: Path, where: str, batch: _Batch) -> Iterator[Document]:
    text = _decode(_read_bytes(path))
    if path.suffix.lower() == ".tsv":
        dialect: Any = csv.excel_tab
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect, restkey=_EXTRA)
    if not reader.fieldnames or not any(name.strip() for name in reader.fieldnames):
        raise _Rejected("no header row")
    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            batch.report.skip(where, f"malformed CSV: {exc}", line=reader.line_num)
            continue
        number += 1
        if _EXTRA in row:
            width = len(reader.fieldnames)
            cells = width + len(row[_EXTRA])
            batch.report.skip(where, f"{cells} cells, the header has {width}", line=reader.line_num, record=number)
            continue
        if not any(_present(value) for value in row.values()):
            continue
        record = {key: value for key, value in row.items() if key is not None and key.strip()}
        document = batch.record(record, where, source=where, line=reader.line_num, number=number)
        if document is not None:
            yield document
    if number == 0:
        raise _Rejected("empty file (a header and no rows)")


def _read_file(path: Path, batch: _Batch, *, beir: bool = False) -> Iterator[Document]:
    where = path.as_posix()
    suffix = path.suffix.lower()
    try:
        if suffix in (".md", ".markdown"):
            yield from _read_text(path, where, batch, markdown=True)
        elif suffix == ".txt":
            yield from _read_text(path, where, batch, markdown=False)
        elif suffix == ".json":
            yield from _read_json(path, where, batch)
        elif suffix == ".jsonl":
            yield from _read_jsonl(path, where, batch, beir=beir or path.name == BEIR_CORPUS)
        elif suffix in (".csv", ".tsv"):
            yield from _read_csv(path, where, batch)
        else:
            raise _Rejected(f"unsupported file type {suffix or '(no suffix)'!r}: read {', '.join(SUPPORTED_SUFFIXES)}")
    except _Rejected as exc:
        batch.report.skip(where, str(exc))
        return
    batch.report.files += 1


def _plan(root: Path) -> list[tuple[Path, bool]]:
    """The files to read under ``root`` (file or folder), each with whether it is a BEIR corpus."""
    if not root.is_dir():
        return [(root, root.name == BEIR_CORPUS)]
    if (root / BEIR_CORPUS).is_file():
        return [(root / BEIR_CORPUS, True)]
    files: list[tuple[Path, bool]] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        here = Path(directory)
        if BEIR_CORPUS in names and here != root:
            files.append((here / BEIR_CORPUS, True))
            subdirectories[:] = []
            continue
        files.extend((here / name, False) for name in sorted(names) if not name.startswith("."))
    return files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _progress_bar(total: int) -> tuple[ProgressCallback | None, Callable[[], None]]:
    """A tqdm bar on stderr (in bytes) as a callback, and its closer; nothing without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="reading", leave=False, dynamic_ncols=True)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def iter_path(
    path: str | os.PathLike[str],
    *,
    tenant: str,
    kind: str | None = None,
    language: str | None = None,
    niche: str | None = None,
    platform: str | None = None,
    report: IngestReport | None = None,
    progress: bool | ProgressCallback = False,
) -> Iterator[Document]:
    """The documents of a file or folder, lazily (for ingests too large to hold); skipped files
    and records are added to ``report``. See :func:`read_path` for the arguments, which are
    checked at once (not at the first document)."""
    defaults = _Defaults.check(tenant, kind, language, niche, platform)
    root = Path(path)
    if not root.exists():
        raise BadRequestError(f"no such file or folder: {root}")
    return _iter_files(root, defaults, report if report is not None else IngestReport(), progress)


def _iter_files(
    root: Path, defaults: _Defaults, report: IngestReport, progress: bool | ProgressCallback
) -> Iterator[Document]:
    files = _plan(root)
    total = sum(_size(file) for file, _ in files)
    callback, close = _progress_bar(total) if progress is True else (progress or None, lambda: None)
    batch = _Batch(defaults, report, callback, total)
    try:
        for file, beir in files:
            before = batch.done
            yield from _read_file(file, batch, beir=beir)
            batch.advance(max(0, _size(file) - (batch.done - before)))
    finally:
        close()


def read_path(
    path: str | os.PathLike[str],
    *,
    tenant: str,
    kind: str | None = None,
    language: str | None = None,
    niche: str | None = None,
    platform: str | None = None,
    progress: bool | ProgressCallback = False,
) -> ReadResult:
    """Every document of a file or folder, and the report of what was skipped.

    ``tenant`` (a creator id or ``"shared"``) owns every document read; ``kind``, ``language``,
    ``niche`` and ``platform`` are defaults that a record's own fields override. ``progress=True``
    shows a tqdm bar (when tqdm is installed); a callable gets ``(bytes read, bytes in all)``.
    A path that does not exist raises :class:`~majordome._errors.BadRequestError`; bad files and
    records are skipped and reported (see the module docstring).
    """
    report = IngestReport()
    documents = list(
        iter_path(
            path,
            tenant=tenant,
            kind=kind,
            language=language,
            niche=niche,
            platform=platform,
            report=report,
            progress=progress,
        )
    )
    return ReadResult(documents, report)


def documents_from_objects(
    objects: Iterable[Mapping[str, Any] | Document],
    *,
    tenant: str,
    kind: str | None = None,
    language: str | None = None,
    niche: str | None = None,
    platform: str | None = None,
    source: str | None = None,
) -> ReadResult:
    """Documents from dicts (records, mapped as in the module docstring) or :class:`Document` s.

    Every document must belong to ``tenant``; ``source`` names the origin of the records (it is
    also where the report places their problems, ``"<objects>"`` if not given).
    """
    defaults = _Defaults.check(tenant, kind, language, niche, platform)
    report = IngestReport()
    batch = _Batch(defaults, report, None, 0)
    where = source or "<objects>"
    documents = []
    for number, item in enumerate(objects, 1):
        document = batch.record(item, where, source=source, number=number)
        if document is not None:
            documents.append(document)
    return ReadResult(documents, report)
