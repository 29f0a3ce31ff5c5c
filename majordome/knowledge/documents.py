"""What the knowledge base stores: :class:`Document` (one item as ingested) and :class:`Chunk`
(one embeddable piece of it, with the document's metadata for the vector store's payload).

Conventions, decided once here so that every reader and the store agree:

- **Tenant**: a creator id, or :data:`SHARED` (``"shared"``) for items every creator may see.
  It is always explicit; there is no default tenant.
- **Kind**: one of :class:`Kind` or a *free* kind. Every kind is normalised the same way
  (trimmed, upper-cased, spaces and hyphens turned into ``_``), so ``"chat closer play"`` *is*
  ``Kind.CHAT_CLOSER_PLAY`` and ``"faq"`` is the free kind ``"FAQ"``. A normalised kind is ASCII
  letters, digits and ``_``, at most 64 characters. The field holds a plain ``str`` (equal to the
  :class:`Kind` member when it is one); :func:`is_free_kind` tells the two apart. Without a kind,
  a document is :data:`DEFAULT_KIND` (``"GENERAL"``, a free kind).
- **Language**: ``"fr"``, ``"en"``, ``"other"``, or ``None`` (not known yet: detect later).
  ``fr-FR``, ``fra``, ``french``, ``français``… become ``"fr"``; any other language code ``"other"``.
- **Niche, platform**: free labels, trimmed and lower-cased (they are filter values).
- **Ids**: a document's id is the one given, else derived from tenant, source and text
  (:func:`stable_id`): the same input always gets the same id. Readers give whole files an id
  derived from tenant and path only, so that editing a file keeps its id and only the chunks
  whose text changed get new ids (see :mod:`majordome.knowledge.sources`).
  A chunk's id is a UUID-shaped hash of (tenant, document id, embedded text, occurrence of that
  text in the document): re-ingesting yields the same ids, a chunk keeps its id when text before
  it changes (its index is *not* hashed), and two tenants can never collide on a point.

Invalid values raise :class:`~majordome._errors.BadRequestError` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from majordome._validation import ValidatedModel

__all__ = [
    "DEFAULT_KIND",
    "SHARED",
    "Chunk",
    "Document",
    "DocumentFormat",
    "Kind",
    "Language",
    "Performance",
    "is_free_kind",
    "normalise_kind",
    "normalise_language",
    "stable_id",
]

SHARED = "shared"
"""The tenant of items every creator may see."""

DEFAULT_KIND = "GENERAL"
"""The (free) kind of a document for which none was given."""

Language = Literal["fr", "en", "other"]
DocumentFormat = Literal["text", "markdown"]


class Kind(StrEnum):
    """The kinds of knowledge the platform knows; any other normalised string is a free kind."""

    CHAT_CLOSER_PLAY = "CHAT_CLOSER_PLAY"
    VIRAL_STRUCTURE = "VIRAL_STRUCTURE"
    EDITING_RULESET = "EDITING_RULESET"
    ANALYTICS_PLAYBOOK = "ANALYTICS_PLAYBOOK"
    TREND_TEMPLATE = "TREND_TEMPLATE"


_KNOWN_KINDS = frozenset(kind.value for kind in Kind)
_KIND_RE = re.compile(r"[A-Z0-9][A-Z0-9_]{0,63}")
_ID_MAX = 256
_TENANT_MAX = 200
_LABEL_MAX = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

_FRENCH = {"fr", "fra", "fre", "french", "francais", "français"}
_ENGLISH = {"en", "eng", "english", "anglais"}
_LANGUAGE_CODE_RE = re.compile(r"[a-z]{2,3}")


def stable_id(*parts: str) -> str:
    """32 hex digits of SHA-256 over ``parts`` (unit-separated): the same parts, the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


def normalise_kind(value: str) -> str:
    """The canonical spelling of a kind (see the module docstring); ``ValueError`` if there is none."""
    kind = re.sub(r"[\s\-]+", "_", value.strip()).upper()
    if not _KIND_RE.fullmatch(kind):
        raise ValueError(
            f"kind {value!r} is not one of {', '.join(sorted(_KNOWN_KINDS))} nor a free kind "
            "(ASCII letters, digits, '_', ' ' or '-', at most 64 characters)"
        )
    return kind


def is_free_kind(kind: str) -> bool:
    """True when ``kind`` (normalised) is not one of :class:`Kind`."""
    return kind not in _KNOWN_KINDS


def normalise_language(value: str | None) -> Language | None:
    """``"fr"``, ``"en"``, ``"other"`` or ``None`` (empty or missing); ``ValueError`` for non-languages."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    primary = re.split(r"[-_]", text, maxsplit=1)[0]
    if text in _FRENCH or primary in _FRENCH:
        return "fr"
    if text in _ENGLISH or primary in _ENGLISH:
        return "en"
    if text == "other" or _LANGUAGE_CODE_RE.fullmatch(primary):
        return "other"
    raise ValueError(f"language {value!r} is not a language code ('fr', 'en', 'other' or another ISO 639 code)")


def _check_plain(value: str, what: str, max_length: int) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError(f"{what} must not contain control characters")
    if len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters")
    return value


def _finite_non_negative(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {value!r}")
    return float(value)


class Performance(ValidatedModel):
    """How well an item worked: a score, the conversions and the revenue it brought.

    Every value is optional, finite and non-negative; the feedback loop updates them.
    """

    score: float | None = None
    conversions: int | None = Field(default=None, ge=0)
    revenue: float | None = None

    @field_validator("score", "revenue")
    @classmethod
    def _finite(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _finite_non_negative(value, str(info.field_name))

    @field_validator("conversions", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def is_empty(self) -> bool:
        """True when no value is set."""
        return self.score is None and self.conversions is None and self.revenue is None


class Document(ValidatedModel):
    """One knowledge item as ingested: its text and what the store filters and boosts on.

    ``format="markdown"`` makes the chunker split on headings. ``metadata`` holds anything
    else (JSON-serialisable, string keys); it is stored under the payload's ``metadata`` key,
    so it cannot shadow a field.
    """

    id: str = ""
    tenant: str
    kind: str = DEFAULT_KIND
    text: str
    title: str | None = None
    language: Language | None = None
    niche: str | None = None
    platform: str | None = None
    source: str | None = None
    format: DocumentFormat = "text"
    tags: tuple[str, ...] = ()
    performance: Performance | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not value or value != value.strip():
            raise ValueError("the tenant must be a creator id or 'shared', without surrounding spaces")
        return _check_plain(value, "the tenant", _TENANT_MAX)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> Any:
        return normalise_kind(value) if isinstance(value, str) else value

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        return normalise_language(value) if isinstance(value, str) else value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the text is empty")
        if "\x00" in value:
            raise ValueError("the text contains NUL characters (binary data?)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "the text is not valid Unicode (an unpaired surrogate, e.g. from a broken JSON escape)"
            ) from None
        return value

    @field_validator("title", "source", mode="before")
    @classmethod
    def _optional_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return _check_plain(value, "the value", 2_000) if value else None
        return value

    @field_validator("niche", "platform", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return _check_plain(value, "the label", _LABEL_MAX) if value else None
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("tags must be a list of strings, not one string")
        if isinstance(value, list | tuple):
            tags: list[str] = []
            for tag in value:
                if not isinstance(tag, str):
                    raise ValueError(f"a tag must be a string, not {type(tag).__name__}")
                tag = _check_plain(tag.strip(), "a tag", _LABEL_MAX)
                if tag and tag not in tags:
                    tags.append(tag)
            return tuple(tags)
        return value

    @field_validator("metadata")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable with string keys: {exc}") from None
        if any(not isinstance(key, str) for key in value):
            raise ValueError("metadata keys must be strings")
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("the id must not have surrounding spaces")
        return _check_plain(value, "the id", _ID_MAX)

    @model_validator(mode="after")
    def _derive_id(self) -> Document:
        if not self.id:
            # Frozen model: set the derived field once, during validation.
            object.__setattr__(self, "id", stable_id("doc", self.tenant, self.source or "", self.text))
        return self

    @property
    def is_shared(self) -> bool:
        """True for an item every tenant may see."""
        return self.tenant == SHARED


@dataclass(frozen=True, slots=True)
class Chunk:
    """One embeddable piece of a :class:`Document`.

    ``text`` is exactly ``document.text[start:end]`` (what a citation quotes); ``context`` is
    the document title and/or Markdown heading path (``"Guide > Pricing"``) that the chunker put in
    front of it, and :attr:`embedding_text` (context, blank line, text) is what gets embedded and
    counted: ``token_count <= max_tokens`` of the chunker. The other fields repeat the document's,
    for the store's payload (:meth:`payload`, :meth:`from_payload`).

    A plain dataclass, not a pydantic model: chunks are made by the chunker from a valid
    document, by the hundred thousand.
    """

    id: str
    document_id: str
    index: int
    text: str
    token_count: int
    start: int
    end: int
    tenant: str
    kind: str
    heading_path: tuple[str, ...] = ()
    context: str = ""
    title: str | None = None
    language: Language | None = None
    niche: str | None = None
    platform: str | None = None
    source: str | None = None
    tags: tuple[str, ...] = ()
    performance: Performance | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedding_text(self) -> str:
        """``context`` + blank line + ``text``, or ``text`` alone when there is no context."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    @staticmethod
    def make_id(tenant: str, document_id: str, embedding_text: str, occurrence: int = 0) -> str:
        """The chunk id: a UUID string (Qdrant accepts it as a point id) hashed from its parts."""
        digest = hashlib.sha256(
            "\x1f".join(("chunk", tenant, document_id, str(occurrence), embedding_text)).encode("utf-8")
        ).digest()
        return str(uuid.UUID(bytes=digest[:16]))

    def payload(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field but ``id`` (the vector store's payload)."""
        return {
            "doc_id": self.document_id,
            "index": self.index,
            "text": self.text,
            "token_count": self.token_count,
            "start": self.start,
            "end": self.end,
            "tenant": self.tenant,
            "kind": self.kind,
            "heading_path": list(self.heading_path),
            "context": self.context,
            "title": self.title,
            "language": self.language,
            "niche": self.niche,
            "platform": self.platform,
            "source": self.source,
            "tags": list(self.tags),
            "performance": self.performance.model_dump() if self.performance is not None else None,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_payload(cls, id: str, payload: Mapping[str, Any]) -> Chunk:
        """The chunk that :meth:`payload` described (for search results read back from the store)."""
        performance = payload.get("performance")
        return cls(
            id=str(id),
            document_id=payload["doc_id"],
            index=int(payload["index"]),
            text=payload["text"],
            token_count=int(payload["token_count"]),
            start=int(payload["start"]),
            end=int(payload["end"]),
            tenant=payload["tenant"],
            kind=payload["kind"],
            heading_path=tuple(payload.get("heading_path") or ()),
            context=payload.get("context") or "",
            title=payload.get("title"),
            language=payload.get("language"),
            niche=payload.get("niche"),
            platform=payload.get("platform"),
            source=payload.get("source"),
            tags=tuple(payload.get("tags") or ()),
            performance=Performance(**performance) if performance else None,
            metadata=dict(payload.get("metadata") or {}),
        )
