"""Guardrails for fan-facing text: incoming fan messages and the drafts written for them.

Each rule reads a text and says why it must go to a human, or nothing. The rules cover what the
platform forbids in English and French: contact off the platform (emails, phone numbers, links,
handles, other messaging apps), minors (ages under 18, school-age cues), non-consent, and
real-life promises (meeting in person). :class:`FrequencyLimiter` caps the drafts written for
one fan in a window. The outcome is never an exception: a violation gives ``ESCALATE`` (the
draft is replaced by a hand-over to a human), and a rule that raises counts as a violation with
the reason ``"guardrail error"`` (fail closed).

:func:`redact_pii` masks emails, phone numbers and card numbers (Luhn-checked) in text meant for
logs and stored events.

The patterns are deliberately broad: a false alarm costs a human a look, a miss costs far more.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_RULES",
    "FrequencyLimiter",
    "GuardrailResult",
    "Guardrails",
    "PatternRule",
    "Rule",
    "check_text",
    "redact_pii",
]

Action = Literal["ALLOW", "ESCALATE"]
GUARDRAIL_ERROR = "guardrail error"


class GuardrailResult(BaseModel):
    """``ALLOW``, or ``ESCALATE`` with the reasons and the names of the rules that fired."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action = "ALLOW"
    reasons: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.action == "ALLOW"

    @classmethod
    def escalate(cls, reasons: Sequence[str], rules: Sequence[str]) -> GuardrailResult:
        return cls(action="ESCALATE", reasons=list(reasons), rules=list(rules))

    @classmethod
    def combine(cls, results: Iterable[GuardrailResult]) -> GuardrailResult:
        """One result: ``ESCALATE`` when any is, with every reason and rule once, in order."""
        reasons: dict[str, None] = {}
        rules: dict[str, None] = {}
        escalate = False
        for result in results:
            escalate = escalate or not result.allowed
            reasons.update(dict.fromkeys(result.reasons))
            rules.update(dict.fromkeys(result.rules))
        return cls.escalate(list(reasons), list(rules)) if escalate else cls()


class Rule(Protocol):
    """A guardrail: ``check`` returns the reason to escalate, or None."""

    @property
    def name(self) -> str: ...

    def check(self, text: str) -> str | None: ...


@dataclass(frozen=True)
class PatternRule:
    """A rule made of regular expressions, each with the reason it gives when it matches.

    Texts are matched case-insensitively with typographic apostrophes made plain.
    """

    name: str
    patterns: tuple[tuple[re.Pattern[str], str], ...]
    predicate: Callable[[re.Match[str]], bool] | None = None
    """When set, a match counts only if ``predicate(match)`` is true (e.g. an age under 18)."""

    def check(self, text: str) -> str | None:
        normalised = _normalise(text)
        for pattern, reason in self.patterns:
            for match in pattern.finditer(normalised):
                if self.predicate is None or self.predicate(match):
                    return reason
        return None


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ").lower()


def _compile(*items: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), reason) for pattern, reason in items)


# -- personal data: shared by the contact rule and redact_pii ---------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}", re.IGNORECASE)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)33[\s.-]?[1-9](?:[\s.-]?\d{2}){4}"  # French, international form
    r"|0[1-9](?:[\s.-]?\d{2}){4}"  # French, national form: 06 12 34 56 78
    r"|\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}"  # other international numbers
    r"|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"  # North American: (555) 123-4567
    r")(?!\d)"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def redact_pii(text: str) -> str:
    """``text`` with emails, phone numbers (French formats included) and card numbers (only those
    passing the Luhn check) replaced by ``[email]``, ``[phone]`` and ``[card]``; for logs and
    stored events. Cards are masked before phones, so a card is never half-masked as a phone."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_mask_card, text)
    return _PHONE.sub("[phone]", text)


# -- the rules ---------------------------------------------------------------------------------

_APPS = (
    r"snap(?:chat)?|whats\s?app|wa\.me|telegram|t\.me|kik|wickr|signal|discord|viber|wechat"
    r"|insta(?:gram)?|ig|tiktok|twitter|facebook|fb|messenger|onlyfans|fansly|mym|skype|facetime"
)
_CONTACT_VERB_EN = (
    r"(?:dm|message|msg|text|txt|write|add|follow|contact|reach|find|hit|call|ping|email|mail)\s+(?:me|us)"
)
_CONTACT_VERB_FR = (
    r"(?:[ée]cris|envoie|ajoute|contacte|retrouve|suis|appelle|texte|joins|rejoins|[ée]cri[st]|viens)[\s-]*(?:moi|-moi)"
)

_OFF_PLATFORM = PatternRule(
    "off_platform_contact",
    _compile(
        (_EMAIL.pattern, "an email address (contact off the platform)"),
        (_PHONE.pattern, "a phone number (contact off the platform)"),
        (r"\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|org|fr|io|me|ly|gg|link|app)(?:/\S*)?\b", "a link"),
        (r"(?<![\w.@])@[a-z0-9_][a-z0-9_.]{2,}", "a social handle"),
        (r"\b(?:snapchat|whats\s?app|wa\.me|telegram|t\.me|kik|wickr|viber|wechat)\b", "another messaging app"),
        (rf"\b(?:{_CONTACT_VERB_EN}|{_CONTACT_VERB_FR})\b.{{0,40}}?\b(?:{_APPS})\b", "contact on another app"),
        (
            rf"\b(?:on|at|sur|via|par|en)\s+(?:my\s+|mon\s+|ma\s+)?(?:{_APPS})\s+(?:dm|dms|pm|mp|inbox|priv[ée]?)\b",
            "private messages on another app",
        ),
        (rf"\b(?:dm|dms|pm|mp|inbox)\s+(?:on|sur|via|en)\s+(?:{_APPS})\b", "private messages on another app"),
        (
            r"\b(?:my|your)\s+(?:number|phone|cell|snap|insta|whatsapp|telegram|email|e-mail|mail)\b(?!\s+(?:one|1|two|2)\b)",
            "a contact detail",
        ),
        (
            r"\b(?:mon|ton|votre)\s+(?:num(?:[ée]ro)?|t[ée]l(?:[ée]phone)?|portable|06|07|snap|insta|whatsapp|telegram|mail|e-mail|adresse\s+mail)\b",
            "a contact detail",
        ),
        (r"\b(?:text|call|ring|whatsapp)\s+me\s+(?:at|on)\b", "contact off the platform"),
        (r"\b(?:texte|appelle|[ée]cris)[\s-]*moi\s+(?:au|sur|[àa])\b", "contact off the platform"),
    ),
)


def _under_18(match: re.Match[str]) -> bool:
    age = next((g for g in match.groups() if g is not None), None)
    return age is not None and int(age) < 18


_AGE_UNITS = (
    r"(?!\s*(?:min|mins|minutes|h|hours?|heures?|km|miles?|%|\$|€|cm|kg|lbs?|inch|ft|times|fois|x\b|dollars|euros|k\b))"
)

_MINOR_AGE = PatternRule(
    "minors",
    _compile(
        (r"\b(\d{1,2})\s*(?:yo|y\.o\.?|y/o|years?[\s-]old|yrs?[\s-]old)\b", "an age under 18"),
        (rf"\b(?:i'm|im|i am|she's|he's|she is|he is|aged?)\s+(\d{{1,2}})\b{_AGE_UNITS}", "an age under 18"),
        (r"\b(?:j'ai|j ai|il a|elle a|[âa]g[ée]e?s?\s+de|seulement)\s+(\d{1,2})\s*ans\b", "an age under 18"),
        (r"\b(?:fille|gar[çc]on|ado|nana|meuf|mec|gamine?)\s+de\s+(\d{1,2})\s*ans\b", "an age under 18"),
    ),
    predicate=_under_18,
)

_MINOR_CUES = PatternRule(
    "minors",
    _compile(
        (
            r"\b(?:under\s*age|underage|(?:i'm|im|i am|she's|he's|still|is)\s+a\s+minor"
            r"|not\s+18\s+yet|under\s+18|below\s+18)\b",
            "a minor",
        ),
        (r"\b(?:mineure?s?|pas\s+(?:encore\s+)?majeure?|moins\s+de\s+18\s+ans|trop\s+jeune)\b", "a minor"),
        (
            r"\b(?:high\s*school|middle\s*school|junior\s*high|elementary\s+school|(?:6|7|8|9|10|11)th\s+grade"
            r"|homework|my\s+teacher|school\s*(?:girl|boy)|after\s+school|my\s+mom\s+(?:won't|doesn't)\s+let)\b",
            "a school-age cue",
        ),
        (
            r"\b(?:coll[èe]ge|lyc[ée]e|lyc[ée]enne?|coll[ée]gienne?|[ée]coli[èe]re?|mes\s+devoirs|mon\s+prof|ma\s+prof"
            r"|(?:je\s+suis|il\s+est|elle\s+est|j'suis)\s+en\s+(?:sixi[èe]me|cinqui[èe]me|quatri[èe]me|troisi[èe]me"
            r"|seconde|premi[èe]re|terminale|[3-6](?:[èe]me|e))|la\s+r[ée]cr[ée]|le\s+bac\s+(?:cette|l'ann[ée]e))\b",
            "a school-age cue",
        ),
    ),
)

_NON_CONSENT = PatternRule(
    "non_consent",
    _compile(
        (r"\bnon[\s-]?consen\w*|\bwithout\s+(?:her|his|my|your|their)\s+(?:consent|permission)\b", "non-consent"),
        (
            r"\bagainst\s+(?:her|his|my|your|their)\s+will\b|\b(?:force|forced|forcing)\s+(?:you|her|him|me|them)\b",
            "non-consent",
        ),
        (r"\b(?:rape|raped|raping|r4pe|drugged|drug\s+(?:you|her|him))\b", "non-consent"),
        (
            r"\bwhile\s+(?:she|he|you)(?:'s|\s+is|\s+was|\s+are|\s+were)?\s+(?:asleep|sleeping|unconscious|passed\s+out|drunk)\b",
            "non-consent",
        ),
        (r"\b(?:can't|cannot|won't)\s+(?:say|take)\s+no\b|\bno\s+means\s+yes\b", "non-consent"),
        (
            r"\bsans\s+(?:son|ton|mon|leur|votre)\s+(?:consentement|accord)\b|\bcontre\s+(?:son|ton|mon)\s+gr[ée]\b",
            "non-consent",
        ),
        (
            r"\bcontre\s+(?:sa|ta|ma|leur|votre)\s+volont[ée]\b|\bde\s+force\b|\bforc[ée]e?s?\b|\bte\s+forcer\b",
            "non-consent",
        ),
        (
            r"\bviol(?:er|[ée]e?s?|ait)?\b|\bdrogu[ée]e?s?\b|\b(?:endormie?|inconsciente?|ivre)\s+(?:et|quand|pendant)\b",
            "non-consent",
        ),
        (r"\b(?:ne\s+peu[xt]\s+pas\s+dire\s+non|non\s+veut\s+dire\s+oui)\b", "non-consent"),
    ),
)

_REAL_LIFE = PatternRule(
    "real_life_meeting",
    _compile(
        (r"\b(?:irl|in\s+real\s+life|in\s+person|face\s+to\s+face)\b", "a real-life meeting"),
        (
            r"\bmeet\s+(?:up|me|irl|in\b|at\b|tonight|tomorrow|somewhere|for\s+(?:a\s+)?(?:drink|coffee|dinner))",
            "a real-life meeting",
        ),
        (
            r"\b(?:let's|lets|we\s+(?:could|should|can))\s+meet\b|\bmeet\s+you\s+(?:at|in|tonight|tomorrow|somewhere|after)\b",
            "a real-life meeting",
        ),
        (
            r"\b(?:come\s+over|(?:at|to)\s+(?:my|your)\s+(?:place|house|hotel|room)|hotel\s+room|(?:my|your)\s+address)\b",
            "a real-life meeting",
        ),
        (
            r"\b(?:rendez[\s-]?vous|rdv|on\s+se\s+voit|se\s+rencontrer|te\s+rencontrer|me\s+rencontrer|nous\s+rencontrer)\b",
            "a real-life meeting",
        ),
        (
            r"\b(?:te|se|me|vous|nous)\s+voir\s+(?:en\s+vrai|en\s+personne|irl|dans\s+la\s+vraie\s+vie)\b",
            "a real-life meeting",
        ),
        (
            r"\b(?:dans\s+la\s+vraie\s+vie|(?:mon|ton|votre)\s+adresse|(?:mon|ton)\s+h[ôo]tel|boire\s+un\s+verre\s+ensemble)\b",
            "a real-life meeting",
        ),
        (
            r"\b(?:viens|venir|passe|passer|rejoins|rejoindre)[\s-]+(?:moi\s+)?chez\s+(?:moi|toi)\b",
            "a real-life meeting",
        ),
    ),
)

DEFAULT_RULES: tuple[Rule, ...] = (_OFF_PLATFORM, _MINOR_AGE, _MINOR_CUES, _NON_CONSENT, _REAL_LIFE)
"""The platform's content rules, in English and French."""


def check_text(text: str, rules: Sequence[Rule] = DEFAULT_RULES) -> GuardrailResult:
    """Apply every rule to ``text``. A rule that raises escalates with ``"guardrail error"``."""
    reasons: dict[str, None] = {}
    fired: dict[str, None] = {}
    for rule in rules:
        try:
            reason = rule.check(text)
        except Exception:  # noqa: BLE001 - any failure of a rule must escalate, never allow
            reason = GUARDRAIL_ERROR
        if reason is not None:
            reasons[reason] = None
            fired[getattr(rule, "name", type(rule).__name__)] = None
    return GuardrailResult.escalate(list(reasons), list(fired)) if reasons else GuardrailResult()


class FrequencyLimiter:
    """At most ``max_drafts`` drafts per (tenant, fan) in any ``window_s`` seconds, counted in
    this process (each worker counts its own). ``clock`` is injectable for tests."""

    def __init__(
        self, max_drafts: int = 30, window_s: float = 3600.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_drafts < 1 or window_s <= 0:
            raise ValueError("max_drafts must be >= 1 and window_s > 0")
        self.max_drafts = max_drafts
        self.window_s = window_s
        self._clock = clock
        self._events: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def remaining(self, tenant: str, fan_id: str) -> int:
        """How many drafts may still be written for this fan in the current window."""
        with self._lock:
            return max(0, self.max_drafts - len(self._recent((tenant, fan_id), self._clock())))

    def record(self, tenant: str, fan_id: str, drafts: int) -> None:
        """Count ``drafts`` drafts written for this fan now."""
        with self._lock:
            now = self._clock()
            self._recent((tenant, fan_id), now).extend([now] * drafts)

    def check(self, tenant: str, fan_id: str) -> GuardrailResult:
        if self.remaining(tenant, fan_id) > 0:
            return GuardrailResult()
        return GuardrailResult.escalate(
            [f"frequency limit: {self.max_drafts} drafts per fan in {self.window_s:g} s"], ["frequency_limit"]
        )


class Guardrails:
    """The rules and the frequency limiter applied by the job helpers.

    One instance per process is meant to be shared (the limiter counts across calls); the job
    helpers use :meth:`shared` unless given one.
    """

    _shared: Guardrails | None = None
    _shared_lock = threading.Lock()

    def __init__(self, rules: Sequence[Rule] = DEFAULT_RULES, limiter: FrequencyLimiter | None = None) -> None:
        self.rules = tuple(rules)
        self.limiter = limiter or FrequencyLimiter()

    @classmethod
    def shared(cls) -> Guardrails:
        """The process-wide default instance (default rules, 30 drafts per fan per hour)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def check(self, text: str) -> GuardrailResult:
        """The content rules on one text (a fan message or a draft); fails closed."""
        return check_text(text, self.rules)

    def check_frequency(self, tenant: str, fan_id: str) -> GuardrailResult:
        """Whether more drafts may be written for this fan now; fails closed."""
        try:
            return self.limiter.check(tenant, fan_id)
        except Exception:  # noqa: BLE001 - fail closed
            return GuardrailResult.escalate([GUARDRAIL_ERROR], ["frequency_limit"])
