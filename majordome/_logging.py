"""Structured logs: one event per call, decision and request, never a secret.

Events go through the standard ``logging`` module under the ``majordome`` logger as JSON lines,
so an application decides where they go (and sees nothing until it enables INFO for
``majordome``). Every event passes the redaction processor: values registered as secrets
(API keys, endpoint URLs) are masked wherever they appear, and fields whose names say
"key", "token", "secret" or "password" are dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog

__all__ = ["get_logger", "redact", "register_endpoint", "register_secret"]

_MASK = "***"
_SECRET_FIELD_WORDS = ("key", "token", "secret", "password", "authorization")
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log event and in :func:`redact` from now on."""
    global _secrets
    if not value or len(value) < 4:
        return
    with _secrets_lock:
        if value not in _secrets:
            # Longest first, so an endpoint that contains a shorter secret is masked whole.
            _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def register_endpoint(url: str | None) -> None:
    """Mask an endpoint: its whole URL and its host (with the port, when it has one)."""
    if not url:
        return
    register_secret(url)
    register_secret(url.rstrip("/"))
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    register_secret(netloc)


def redact(text: str) -> str:
    """``text`` with every registered secret masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


# Fields that carry people's text (logged only with log_message_bodies, or errors' details):
# emails, phone and card numbers in them are replaced too (majordome.guardrails.redact_pii).
_TEXT_FIELDS = frozenset({"messages", "answer_text", "detail", "prompt", "text"})


def _redact_pii(value: Any) -> Any:
    from majordome.guardrails import redact_pii

    if isinstance(value, str):
        return redact_pii(value)
    if isinstance(value, dict):
        return {k: _redact_pii(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_pii(v) for v in value]
    return value


def _redaction_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        lowered = name.lower()
        if any(word in lowered for word in _SECRET_FIELD_WORDS) and not lowered.endswith("_tokens"):
            del event[name]
        else:
            value = _redact_value(event[name])
            event[name] = _redact_pii(value) if lowered in _TEXT_FIELDS else value
    return event


def get_logger(name: str = "majordome") -> Any:
    """A structlog logger writing JSON lines to the stdlib logger ``name``."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        cache_logger_on_first_use=True,
        wrapper_class=structlog.stdlib.BoundLogger,
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redaction_processor,
            structlog.processors.JSONRenderer(),
        ],
    )
