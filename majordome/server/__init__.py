"""An OpenAI-compatible HTTP API over a :class:`~majordome.Majordome` (``majordome serve``).

``POST /v1/chat/completions`` (``model: "majordome"`` routes; a catalogue id pins),
``POST /v1/feedback``, ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``. Each API key
belongs to one tenant (:class:`ApiKeys`); :class:`ServerLimits` bounds bodies, messages and
each tenant's request rate. Needs the ``[server]`` extra (FastAPI, uvicorn).

HTTP statuses of majordome's errors: bad request, capability and context window 400; unknown
model or trace 404; a spent budget 402 (not 429, which clients retry); a rate limit 429 with
``Retry-After``; provider failures 502; deadline 504; budget or store unreachable 503;
configuration 500 (message withheld). Feedback when no store is configured: 409.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as _error:  # pragma: no cover - depends on the installed extras
    raise ImportError("majordome.server needs FastAPI and uvicorn: pip install 'majordome[server]'") from _error

from majordome.server._app import create_app
from majordome.server._auth import ApiKeys, hash_key
from majordome.server._limits import InProcessRateLimiter, RateLimiter, RedisRateLimiter, ServerLimits
from majordome.server._serve import BackgroundServer, serve

__all__ = [
    "ApiKeys",
    "BackgroundServer",
    "InProcessRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "ServerLimits",
    "create_app",
    "hash_key",
    "serve",
]
