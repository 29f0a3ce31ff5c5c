from __future__ import annotations

import pytest

from majordome import AudioPart, BadRequestError, ImagePart, Message, TextPart, Usage
from majordome.models.messages import Modality


def test_plain_and_multipart_messages() -> None:
    plain = Message(role="user", content="hi")
    assert plain.text == "hi" and plain.modalities == {Modality.TEXT}
    parts = Message(role="user", content=[TextPart(text="look"), ImagePart(url="https://x.example/a.png")])
    assert parts.text == "look"
    assert parts.modalities == {Modality.TEXT, Modality.IMAGE}


def test_openai_shapes_are_accepted() -> None:
    message = Message.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "listen"},
                {"type": "image_url", "image_url": "https://x.example/a.png"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        }
    )
    assert message.modalities == {Modality.TEXT, Modality.IMAGE, Modality.AUDIO}
    assert isinstance(message.content[2], AudioPart)  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"url": "/etc/passwd"}, r"http\(s\) URL or a base64 data URI"),
        ({"url": "data:text/plain;base64,aGVsbG8="}, "image/\\* type"),
        ({"url": "data:image/png;base64,not base64!"}, "not valid base64"),
    ],
)
def test_bad_images_are_refused(kwargs: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadRequestError, match=fragment):
        ImagePart(**kwargs)


def test_bad_audio_and_empty_parts_are_refused() -> None:
    with pytest.raises(BadRequestError, match="base64"):
        AudioPart(data="%%%", format="wav")
    with pytest.raises(BadRequestError, match="format"):
        AudioPart(data="UklGRg==", format="aiff")  # type: ignore[arg-type]
    with pytest.raises(BadRequestError, match="at least one content part"):
        Message(role="user", content=[])


def test_usage_adds_up() -> None:
    total = Usage(10, 2) + Usage(5, 1, estimated=True)
    assert total == Usage(15, 3, estimated=True) and total.total_tokens == 18
