from __future__ import annotations

import math

import pytest

from majordome._errors import BadRequestError
from majordome.feedback.reward import RewardMapping, word_edit_distance


def test_each_signal_maps_into_zero_one() -> None:
    mapping = RewardMapping()
    assert [mapping.reward("rating", s) for s in (1, 3, 5)] == [0.0, 0.5, 1.0]
    assert mapping.reward("thumbs", True) == 1.0 and mapping.reward("thumbs", -1) == 0.0
    assert mapping.reward("conversion", False) == 0.0 and mapping.reward("conversion", 1) == 1.0
    assert mapping.reward("revenue", 0) == 0.0
    assert mapping.reward("revenue", 20) == pytest.approx(1 - math.exp(-1))


def test_edit_reward_is_one_minus_the_word_edit_share() -> None:
    mapping = RewardMapping()
    draft = "Hey love, the custom video is 25 dollars, ready Friday!"
    assert mapping.reward("edit", draft, draft=draft) == 1.0
    assert word_edit_distance("a b c d", "a x c d") == 1
    one_word = mapping.reward("edit", draft.replace("Friday", "Monday"), draft=draft)
    words = 13  # hey love , the custom video is 25 dollars , ready friday !
    assert one_word == pytest.approx(1 - 1 / words)
    assert mapping.reward("edit", "Totally different reply written from scratch.", draft=draft) < 0.2
    with pytest.raises(BadRequestError, match="draft"):
        mapping.reward("edit", "sent", draft=None)


@pytest.mark.parametrize(
    ("kind", "value"),
    [("rating", 0), ("rating", 6), ("rating", float("nan")), ("thumbs", 2), ("revenue", -1), ("rating", True)],
)
def test_out_of_range_values_are_bad_requests(kind: str, value: object) -> None:
    with pytest.raises(BadRequestError):
        RewardMapping().reward(kind, value)  # type: ignore[arg-type]


def test_unknown_kinds_and_bad_weights_are_refused() -> None:
    with pytest.raises(BadRequestError, match="unknown feedback kind"):
        RewardMapping().reward("stars", 3)
    with pytest.raises(BadRequestError, match="unknown kinds"):
        RewardMapping(weights={"likes": 1.0})
    with pytest.raises(BadRequestError, match="weight"):
        RewardMapping(weights={"rating": -1.0})
