"""From feedback signals to a reward in [0, 1], the number the online learner learns from.

Each signal is mapped on its own, and carries a weight (how much one such signal counts, as a
number of observations):

========== ====================================== =============================================
kind       value                                  reward
========== ====================================== =============================================
rating     1 to 5 stars                           (stars − 1) / 4
thumbs     up (True, 1) or down (False, 0, −1)    1 or 0
edit       the text the creator actually sent     1 − word-level edit distance / longer length
           (with the draft it started from)       (sent as drafted = 1; rewritten = ~0)
conversion the fan replied or bought (bool)       1 or 0
revenue    USD the message brought (>= 0)         1 − exp(−revenue / revenue_scale_usd)
========== ====================================== =============================================

Out-of-range values are a :class:`~majordome._errors.BadRequestError`, never a silent clamp.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from majordome._errors import BadRequestError

__all__ = ["KINDS", "FeedbackKind", "RewardMapping", "word_edit_distance"]

FeedbackKind = Literal["rating", "thumbs", "edit", "conversion", "revenue"]
KINDS: tuple[FeedbackKind, ...] = ("rating", "thumbs", "edit", "conversion", "revenue")
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_MAX_WORDS = 2000  # longer texts are compared on their first 2,000 words


def word_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between the word (and punctuation) sequences of ``a`` and ``b``."""
    x, y = _WORD.findall(a.lower())[:_MAX_WORDS], _WORD.findall(b.lower())[:_MAX_WORDS]
    if len(x) < len(y):
        x, y = y, x
    previous = list(range(len(y) + 1))
    for i, word in enumerate(x, 1):
        current = [i]
        for j, other in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class RewardMapping:
    """How each kind of signal becomes a reward, and how much it weighs."""

    weights: Mapping[str, float] = field(
        default_factory=lambda: {"rating": 1.0, "thumbs": 1.0, "edit": 1.0, "conversion": 2.0, "revenue": 2.0}
    )
    revenue_scale_usd: float = 20.0

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise BadRequestError(f"reward weights for unknown kinds {sorted(unknown)}; kinds: {', '.join(KINDS)}")
        for kind, weight in self.weights.items():
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
                raise BadRequestError(f"the weight of {kind} must be a finite number >= 0, got {weight!r}")
        if not (math.isfinite(self.revenue_scale_usd) and self.revenue_scale_usd > 0):
            raise BadRequestError(f"revenue_scale_usd must be > 0, got {self.revenue_scale_usd!r}")

    def weight(self, kind: str) -> float:
        return float(self.weights.get(kind, 1.0))

    def reward(self, kind: str, value: float | bool | str, *, draft: str | None = None) -> float:
        """The reward of one signal (see the module's table)."""
        if kind == "rating":
            stars = _number(kind, value)
            if not 1 <= stars <= 5:
                raise BadRequestError(f"a rating is 1 to 5 stars, got {value!r}")
            return (stars - 1) / 4
        if kind in ("thumbs", "conversion"):
            if isinstance(value, bool):
                return 1.0 if value else 0.0
            number = _number(kind, value)
            if number not in (1, 0, -1):
                raise BadRequestError(f"{kind} is up/down (True/False, 1/0/-1), got {value!r}")
            return 1.0 if number == 1 else 0.0
        if kind == "edit":
            if not isinstance(value, str):
                raise BadRequestError(f"edit feedback is the text actually sent, got {type(value).__name__}")
            if draft is None:
                raise BadRequestError("edit feedback needs the draft it started from (not recorded for this trace)")
            longest = max(len(_WORD.findall(draft)), len(_WORD.findall(value)), 1)
            return max(0.0, 1.0 - word_edit_distance(draft, value) / min(longest, _MAX_WORDS))
        if kind == "revenue":
            usd = _number(kind, value)
            if usd < 0:
                raise BadRequestError(f"revenue must be >= 0 USD, got {value!r}")
            return 1.0 - math.exp(-usd / self.revenue_scale_usd)
        raise BadRequestError(f"unknown feedback kind {kind!r}; kinds: {', '.join(KINDS)}")


def _number(kind: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequestError(f"{kind} must be a finite number, got {value!r}")
    return float(value)
