"""Cache keys and the per-intent cache policy.

A :class:`CacheKey` is a SHA-256 over everything that changes what a model would answer: the
routing policy's version (or the pinned model), the intent, the normalised messages (roles and
whitespace-normalised text; attachments by the hash of their bytes), the generation parameters
(max tokens, temperature, JSON mode), the tenant, and the user when the intent is personal. A
request whose answer must not be shared (an attachment only reachable by URL, a personal intent
without a user, an intent whose TTL is 0) raises :class:`Uncacheable` with the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from majordome._errors import MajordomeError
from majordome._types import Request
from majordome.models.messages import AudioPart, ImagePart, Message, TextPart

__all__ = ["DEFAULT_TTL_S", "KEY_VERSION", "CacheKey", "CachePolicy", "Uncacheable", "normalise_text"]

KEY_VERSION = 1
"""Bumped when the key's recipe changes, so old entries are never read with a new meaning."""

DEFAULT_TTL_S: Mapping[str, int] = MappingProxyType(
    {
        # simple generation: 1 h
        "fan_reply": 3600,
        "translation": 3600,
        # personalised: 5 min (and keyed by user)
        "sales_message": 300,
        # creative: 10 min
        "content_ideas": 600,
        "caption_writing": 600,
        # classification-like analysis: 30 min
        "content_analysis": 1800,
        "extraction": 1800,
        # attachments: only cacheable when every attachment is hashed by content (see CacheKey)
        "vision": 1800,
        "transcription": 3600,
        # reasoning: never
        "reasoning": 0,
    }
)


class Uncacheable(MajordomeError):
    """The request's answer must not be cached or served from the cache; ``reason`` says why.

    Not an error of the request: the caller skips the cache and calls the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"uncacheable: {reason}")
        self.reason = reason


def normalise_text(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped (case and punctuation kept)."""
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class CacheKey:
    """The exact-match key of one cacheable request: its tenant (kept apart so that a store can
    partition by it) and the SHA-256 hex digest of the request's canonical form."""

    tenant: str
    intent: str
    digest: str


def _parts(message: Message) -> list[list[str]]:
    if isinstance(message.content, str):
        return [["text", normalise_text(message.content)]]
    parts: list[list[str]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append(["text", normalise_text(part.text)])
        elif isinstance(part, ImagePart):
            if not part.url.startswith("data:"):
                raise Uncacheable("an image given by URL cannot be hashed by content")
            parts.append(["image", hashlib.sha256(part.url.encode()).hexdigest(), part.detail])
        elif isinstance(part, AudioPart):
            parts.append(["audio", hashlib.sha256(part.data.encode()).hexdigest(), part.format])
        else:  # a part type added later: refuse rather than ignore it
            raise Uncacheable(f"a {type(part).__name__} cannot be hashed")
    return parts


@dataclass(frozen=True)
class CachePolicy:
    """How long each intent's answers are kept, and which intents are personal.

    ``ttl_s`` maps an intent to seconds (0 = never cached); an intent it does not list gets
    ``default_ttl_s`` (0 by default: an unknown intent is not cached). Personal intents are keyed
    by user, uncacheable without one, and never served by semantic lookup (whose partitions are
    per tenant, not per user)."""

    ttl_s: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TTL_S))
    personal_intents: frozenset[str] = frozenset({"sales_message"})
    default_ttl_s: int = 0

    def ttl_for(self, intent: str) -> int:
        return max(0, int(self.ttl_s.get(intent, self.default_ttl_s)))

    def semantic_allowed(self, intent: str) -> bool:
        """Whether a similar (not identical) request may be answered from the cache."""
        return self.ttl_for(intent) > 0 and intent not in self.personal_intents

    def key(self, request: Request, *, intent: str, policy_version: str) -> CacheKey:
        """The key of ``request`` routed under ``policy_version`` for ``intent``; raises
        :class:`Uncacheable` when its answer must not be cached."""
        if self.ttl_for(intent) <= 0:
            raise Uncacheable(f"intent {intent!r} is not cached")
        personal = intent in self.personal_intents
        if personal and not request.user:
            raise Uncacheable(f"intent {intent!r} is personal and the request names no user")
        canonical = {
            "v": KEY_VERSION,
            "route": f"model:{request.model}" if request.model else f"policy:{policy_version}",
            "intent": intent,
            "tenant": request.tenant,
            "user": request.user if personal else None,
            "messages": [[m.role, _parts(m)] for m in request.messages],
            "max_tokens": request.max_output_tokens,
            "temperature": request.temperature,
            "json": request.json_mode,
            "ground": request.ground,
        }
        return CacheKey(request.tenant, intent, _digest(canonical))

    def semantic_scope(self, request: Request, *, intent: str, policy_version: str) -> tuple[str, str]:
        """``(scope, text)`` for semantic lookup: ``text`` is the last message, the user's (the
        part compared by meaning); ``scope`` is a digest of everything else, which a similar
        request must share exactly (route, intent, tenant, earlier messages, parameters).
        Raises :class:`Uncacheable` when the request may not be answered by a similar one."""
        if not self.semantic_allowed(intent):
            raise Uncacheable(f"intent {intent!r} is not answered by similar requests")
        *earlier, last = request.messages
        if last.role != "user" or not isinstance(last.content, str):
            raise Uncacheable("semantic lookup compares a last user message of text only")
        canonical = {
            "v": KEY_VERSION,
            "route": f"model:{request.model}" if request.model else f"policy:{policy_version}",
            "intent": intent,
            "tenant": request.tenant,
            "messages": [[m.role, _parts(m)] for m in earlier],
            "max_tokens": request.max_output_tokens,
            "temperature": request.temperature,
            "json": request.json_mode,
            "ground": request.ground,
        }
        return _digest(canonical)[:32], normalise_text(last.content)


def _digest(canonical: dict[str, object]) -> str:
    blob = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
