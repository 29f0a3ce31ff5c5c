"""Cache keys: what changes them, what does not, and what makes a request uncacheable."""

from __future__ import annotations

from typing import Any

import pytest

from majordome import Request
from majordome.cache import DEFAULT_TTL_S, CachePolicy, Uncacheable, content_of, guard_of, numbers_of, strict_guard_of

PNG = "data:image/png;base64,iVBORw0KGgo="
PNG2 = "data:image/png;base64,iVBORw0KGgoA"


def request(text: str = "Reply to: loved the video!", **fields: Any) -> Request:
    base: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "tenant": "creator_1"}
    return Request(**{**base, **fields})


def key_of(req: Request, intent: str = "fan_reply", version: str = "v1", policy: CachePolicy | None = None) -> str:
    return (policy or CachePolicy()).key(req, intent=intent, policy_version=version).digest


def test_the_key_is_a_stable_sha256_of_the_normalised_request() -> None:
    digest = key_of(request())
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert key_of(request("  Reply   to:\n loved the video! ")) == digest
    assert key_of(request("reply to: loved the video!")) != digest  # case is meaning


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "creator_2"},
        {"max_output_tokens": 10},
        {"temperature": 0.2},
        {"json_mode": True},
        {"model": "deepseek-v3"},
        {"messages": [{"role": "system", "content": "Reply to: loved the video!"}, {"role": "user", "content": "x"}]},
    ],
)
def test_every_generation_input_changes_the_key(change: dict[str, Any]) -> None:
    assert key_of(request(**change)) != key_of(request())


def test_policy_version_and_intent_change_the_key() -> None:
    assert key_of(request(), version="v2") != key_of(request())
    assert key_of(request(), intent="translation") != key_of(request())


def test_a_pinned_model_ignores_the_policy_version() -> None:
    pinned = request(model="deepseek-v3")
    assert key_of(pinned, version="v1") == key_of(pinned, version="v2")


def test_user_is_part_of_the_key_only_for_personal_intents() -> None:
    assert key_of(request(user="a")) == key_of(request(user="b"))
    assert key_of(request(user="a"), intent="sales_message") != key_of(request(user="b"), intent="sales_message")


def test_personal_intent_without_user_is_uncacheable() -> None:
    with pytest.raises(Uncacheable, match="personal"):
        key_of(request(), intent="sales_message")


def test_reasoning_and_unknown_intents_are_never_cached() -> None:
    for intent in ("reasoning", "something_new"):
        with pytest.raises(Uncacheable, match="not cached"):
            key_of(request(), intent=intent)


def test_attachments_are_hashed_by_content_and_urls_are_uncacheable() -> None:
    def with_image(url: str) -> Request:
        return request(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "what is it?"}, {"type": "image", "url": url}]}
            ]
        )

    assert key_of(with_image(PNG), intent="vision") == key_of(with_image(PNG), intent="vision")
    assert key_of(with_image(PNG), intent="vision") != key_of(with_image(PNG2), intent="vision")
    with pytest.raises(Uncacheable, match="URL"):
        key_of(with_image("https://example.com/cat.png"), intent="vision")


def test_default_ttls_follow_the_old_design() -> None:
    policy = CachePolicy()
    assert policy.ttl_for("fan_reply") == 3600
    assert policy.ttl_for("sales_message") == 300
    assert policy.ttl_for("caption_writing") == 600
    assert policy.ttl_for("content_analysis") == 1800
    assert policy.ttl_for("reasoning") == 0
    assert set(DEFAULT_TTL_S) >= {"fan_reply", "sales_message", "content_ideas", "translation", "extraction"}
    assert not policy.semantic_allowed("sales_message") and policy.semantic_allowed("fan_reply")


def test_number_fingerprint_tells_prices_dates_and_quantities_apart() -> None:
    assert numbers_of("a 20 € discount") != numbers_of("a 50 € discount")
    assert numbers_of("post on Monday") != numbers_of("post on Tuesday")
    assert numbers_of("trois photos") != numbers_of("quatre photos")
    assert numbers_of("Send 3 photos, March 5") == numbers_of("March 5: send   3 photos")
    assert numbers_of("Write a caption") == ()


def test_full_guard_adds_negations_and_names() -> None:
    assert guard_of("Reply to Tom about the tour") != guard_of("Reply to Sarah about the tour")
    assert guard_of("Tell a fan I am available") != guard_of("Tell a fan I am not available")
    assert guard_of("Dis que je publierai") != guard_of("Dis que je ne publierai plus")
    assert guard_of("Reply to Tom about the tour") == guard_of("Reply to Tom regarding the tour")
    assert guard_of("Write a caption. Thanks") == guard_of("Write a caption please")  # sentence starts are no names


def test_the_strict_guard_lets_filler_change_and_nothing_else() -> None:
    same = [
        ("Write a caption for my beach photo", "Could you please write a caption for my beach photo?"),
        ("Summarize this comment: great video", "Summarise this comment: great video"),
        ("Rédige une légende pour ma photo de plage", "Tu peux rédiger une légende pour ma photo de plage stp"),
    ]
    for a, b in same:
        assert strict_guard_of(a) == strict_guard_of(b), (a, b)
    different = [
        ("Write a caption for my dog photo", "Write a caption for my cat photo"),
        ("the audio is fine but the video freezes", "the video is fine but the audio freezes"),  # same words
        ("Write a formal reply", "Write a casual reply"),
        ("Reply to Tom", "Reply to Sarah"),
        ("A 20 € discount", "A 50 € discount"),
        ("Tell a fan I am available", "Tell a fan I am not available"),
    ]
    for a, b in different:
        assert strict_guard_of(a) != strict_guard_of(b), (a, b)
    assert content_of("Could you write it please") == ()


def test_semantic_scope_covers_everything_but_the_last_user_message() -> None:
    policy = CachePolicy()
    base = Request.parse({"messages": [{"role": "user", "content": "  A caption  for my photo "}], "tenant": "t"})
    scope, text = policy.semantic_scope(base, intent="caption_writing", policy_version="p1")
    assert text == "A caption for my photo"
    other_text = Request.parse({"messages": [{"role": "user", "content": "Another caption"}], "tenant": "t"})
    assert policy.semantic_scope(other_text, intent="caption_writing", policy_version="p1")[0] == scope
    for changed in (
        {"tenant": "u"},
        {"max_output_tokens": 50},
        {
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": "A caption for my photo"},
            ]
        },
    ):
        request = Request.parse(
            {"messages": [{"role": "user", "content": "A caption for my photo"}], "tenant": "t", **changed}
        )
        assert policy.semantic_scope(request, intent="caption_writing", policy_version="p1")[0] != scope
    assert policy.semantic_scope(base, intent="caption_writing", policy_version="p2")[0] != scope
    with pytest.raises(Uncacheable):
        policy.semantic_scope(base, intent="sales_message", policy_version="p1")  # personal
    with pytest.raises(Uncacheable):
        policy.semantic_scope(base, intent="reasoning", policy_version="p1")  # never cached
