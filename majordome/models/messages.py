"""Chat messages and token usage: what every provider reads and reports.

Messages are validated at the edge (pydantic) and accept the OpenAI wire shapes as well as
majordome's own, so a worker can pass what it already has::

    Message(role="user", content="hi")
    Message(role="user", content=[{"type": "text", "text": "what is this?"},
                                  {"type": "image_url", "image_url": {"url": "https://..."}}])
    Message(role="user", content=[ImagePart(url="data:image/png;base64,...")])
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from majordome._validation import ValidatedModel

__all__ = [
    "AudioPart",
    "ContentPart",
    "ImagePart",
    "Message",
    "Modality",
    "TextPart",
    "Usage",
]


class Modality(StrEnum):
    """What a message part carries; a model's capabilities say which it can read."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)


class TextPart(ValidatedModel):
    """A piece of text."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(ValidatedModel):
    """An image, by ``http(s)`` URL or ``data:`` URI (base64)."""

    type: Literal["image"] = "image"
    url: str
    detail: Literal["auto", "low", "high"] = "auto"

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if url.startswith(("http://", "https://")):
            return url
        match = _DATA_URI.match(url)
        if match is None:
            raise ValueError("an image must be an http(s) URL or a base64 data URI")
        mime = match.group("mime") or ""
        if not mime.startswith("image/"):
            raise ValueError(f"an image data URI must have an image/* type, not {mime or 'none'!r}")
        _check_base64(match.group("data"))
        return url


class AudioPart(ValidatedModel):
    """Audio as base64 data with its format (what the chat APIs accept as ``input_audio``)."""

    type: Literal["audio"] = "audio"
    data: str
    format: Literal["wav", "mp3", "flac", "ogg", "m4a", "webm"]

    @field_validator("data")
    @classmethod
    def _check_data(cls, data: str) -> str:
        _check_base64(data)
        return data


def _check_base64(data: str) -> None:
    if not data:
        raise ValueError("empty base64 data")
    # Checking a prefix is enough to catch the usual mistakes (raw bytes, a path, a URL)
    # without decoding megabytes of audio at validation time.
    head = data if len(data) <= 4096 else data[:4096]
    try:
        base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("data is not valid base64") from exc


ContentPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]


def _from_openai_part(part: Any) -> Any:
    """Translate OpenAI content parts (``image_url``, ``input_audio``) to majordome's."""
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            return {"type": "image", "url": image}
        if isinstance(image, dict):
            return {"type": "image", **image}
    if kind == "input_audio" and isinstance(part.get("input_audio"), dict):
        return {"type": "audio", **part["input_audio"]}
    return part


class Message(ValidatedModel):
    """One chat message: a role and either plain text or a list of parts."""

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    @model_validator(mode="before")
    @classmethod
    def _accept_openai_parts(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("content"), list):
            data = {**data, "content": [_from_openai_part(p) for p in data["content"]]}
        return data

    @field_validator("content")
    @classmethod
    def _not_empty(cls, content: str | list[Any]) -> str | list[Any]:
        if isinstance(content, list) and not content:
            raise ValueError("a message needs at least one content part")
        return content

    @property
    def text(self) -> str:
        """The message's text parts joined by newlines (attachments left out)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def modalities(self) -> frozenset[Modality]:
        """The modalities of the message's parts."""
        if isinstance(self.content, str):
            return frozenset({Modality.TEXT})
        return frozenset(Modality(p.type) for p in self.content)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens used by one call. ``estimated`` is true when the provider did not report them
    and majordome counted them itself (tiktoken), which is approximate for non-OpenAI models."""

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
        )
