from __future__ import annotations

import pytest

from majordome.models.reasoning import ThinkSplitter, split_reasoning


def test_leading_trace_is_split_off() -> None:
    assert split_reasoning("<think>a\nb</think>\n\nHello") == ("Hello", "a\nb")
    assert split_reasoning("  \n<think>x</think>y") == ("y", "x")


def test_text_without_a_leading_trace_is_untouched() -> None:
    assert split_reasoning("Hello <think>not a trace</think>") == ("Hello <think>not a trace</think>", None)
    assert split_reasoning("") == ("", None)
    assert split_reasoning("<thin") == ("<thin", None)


def test_an_unterminated_trace_never_leaks_into_the_answer() -> None:
    assert split_reasoning("<think>still thinking when cut") == ("", "still thinking when cut")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_streaming_gives_the_same_split_for_any_chunking(size: int) -> None:
    text = "<think>plan: 12*7 = 84</think>\n\nThe answer is 84. <think> stays text"
    splitter = ThinkSplitter()
    answer, reasoning = "", ""
    for start in range(0, len(text), size):
        a, r = splitter.feed(text[start : start + size])
        answer, reasoning = answer + a, reasoning + r
    a, r = splitter.finish()
    assert (
        (answer + a, reasoning + r)
        == split_reasoning(text)
        == ("The answer is 84. <think> stays text", "plan: 12*7 = 84")
    )
