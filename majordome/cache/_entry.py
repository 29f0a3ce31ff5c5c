"""The cached form of an answer, with a versioned JSON encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from majordome._errors import MajordomeError
from majordome.models.messages import Usage

__all__ = ["ENTRY_FORMAT", "CachedAnswer", "CorruptEntry"]

ENTRY_FORMAT = 1


class CorruptEntry(MajordomeError):
    """A stored entry that cannot be decoded. The cache back ends drop (and count) such entries;
    this error never reaches a request."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """What a cache hit returns: the answer's text and the facts needed to describe it
    (the model that answered, its usage at the time, the trace that produced it, when)."""

    text: str
    model: str
    usage: Usage
    trace_id: str
    created_at: float
    intent: str
    language: str | None
    tenant: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ENTRY_FORMAT,
                "text": self.text,
                "model": self.model,
                "usage": [self.usage.input_tokens, self.usage.output_tokens, self.usage.estimated],
                "trace_id": self.trace_id,
                "created_at": self.created_at,
                "intent": self.intent,
                "language": self.language,
                "tenant": self.tenant,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedAnswer:
        """Decode an entry; raises :class:`CorruptEntry` for anything but a well-formed entry
        of a known format."""
        try:
            data: Any = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
                raise CorruptEntry("unknown cache entry format")
            usage = data["usage"]
            if not (isinstance(usage, list) and len(usage) == 3):
                raise CorruptEntry("bad usage in cache entry")
            language = data["language"]
            answer = cls(
                text=_str(data["text"]),
                model=_str(data["model"]),
                usage=Usage(_int(usage[0]), _int(usage[1]), bool(usage[2])),
                trace_id=_str(data["trace_id"]),
                created_at=float(data["created_at"]),
                intent=_str(data["intent"]),
                language=None if language is None else _str(language),
                tenant=_str(data["tenant"]),
            )
        except CorruptEntry:
            raise
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise CorruptEntry(f"undecodable cache entry: {type(error).__name__}") from error
        return answer


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value
