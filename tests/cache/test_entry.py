"""The cached form of an answer."""

from __future__ import annotations

import pytest

from majordome.cache import CachedAnswer, CorruptEntry
from majordome.models.messages import Usage

ANSWER = CachedAnswer("Merci 🙏", "llama-3.3-70b", Usage(12, 5, True), "trace-1", 1700.5, "fan_reply", "fr", "t1")


def test_round_trip() -> None:
    assert CachedAnswer.from_json(ANSWER.to_json()) == ANSWER


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"format": 99}',
        ANSWER.to_json().replace('"format":1', '"format":2'),
        ANSWER.to_json().replace('"text":"Merci 🙏"', '"text":3'),
        ANSWER.to_json().replace('"usage":[12,5,true]', '"usage":[12]'),
        b"\xff\xfe",
    ],
)
def test_corrupt_entries_raise_the_typed_error(raw: str | bytes) -> None:
    with pytest.raises(CorruptEntry):
        CachedAnswer.from_json(raw)
