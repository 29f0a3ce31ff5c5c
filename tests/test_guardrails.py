"""Guardrails: each rule with texts that must escalate and texts that must pass, in English and
French; the fail-closed path; the frequency limiter; PII redaction."""

from __future__ import annotations

import pytest

from majordome.guardrails import (
    DEFAULT_RULES,
    FrequencyLimiter,
    GuardrailResult,
    Guardrails,
    check_text,
    redact_pii,
)

# (text, the rule that must fire)
ESCALATE = [
    # off-platform contact
    ("Write me at lucie.martin@gmail.com", "off_platform_contact"),
    ("Text me at 555-123-4567 babe", "off_platform_contact"),
    ("add me on snapchat: lulu_x", "off_platform_contact"),
    ("we should talk on WhatsApp instead", "off_platform_contact"),
    ("DM me on insta, it's easier", "off_platform_contact"),
    ("find me at @lulu.private", "off_platform_contact"),
    ("check https://example.com/me", "off_platform_contact"),
    ("Mon numéro c'est le 06 12 34 56 78", "off_platform_contact"),
    ("appelle-moi au +33 6 12 34 56 78", "off_platform_contact"),
    ("écris-moi sur Telegram stp", "off_platform_contact"),
    ("ajoute-moi sur insta", "off_platform_contact"),
    # minors
    ("I'm 16 and I love your pics", "minors"),
    ("she is 15 years old", "minors"),
    ("just got home from high school", "minors"),
    ("j'ai 15 ans et je t'adore", "minors"),
    ("je suis en seconde au lycée", "minors"),
    ("je suis mineure mais je veux te voir", "minors"),
    # non-consent
    ("I want to do it without her consent", "non_consent"),
    ("I'd force you even if you said no", "non_consent"),
    ("while she's asleep", "non_consent"),
    ("contre sa volonté", "non_consent"),
    ("sans ton consentement", "non_consent"),
    # real-life promises
    ("Let's meet up tonight?", "real_life_meeting"),
    ("can't wait to see you IRL", "real_life_meeting"),
    ("come over to my place", "real_life_meeting"),
    ("On se donne rendez-vous samedi ?", "real_life_meeting"),
    ("j'ai hâte de te voir en vrai", "real_life_meeting"),
    ("viens chez moi ce soir", "real_life_meeting"),
]

ALLOW = [
    "Loved your last video, you look amazing!",
    "I'm 25 and a huge fan",
    "I'm 5 minutes late, sorry",
    "You're my number one fan, thank you babe",
    "Haha you made my day, tell me more about your week 😘",
    "I've been following you for 2 years",
    "Merci pour ta vidéo, j'ai adoré !",
    "J'ai 32 ans et je te suis depuis 3 ans",
    "En vrai, ta dernière photo est magnifique",
    "C'est la 3ème fois que je regarde ta vidéo",
    "Nice to meet you here!",
    "Je suis chez moi ce soir, raconte-moi ta journée",
    "Without her makeup she's still stunning",
    "My school days are long gone, I'm 40 now",
    "Tu joues du violon ?",
    "C'est forcément ta meilleure vidéo",
    "Réponds-moi ici, j'adore te lire",
]


@pytest.mark.parametrize(("text", "rule"), ESCALATE)
def test_each_rule_escalates_what_it_forbids(text: str, rule: str) -> None:
    result = check_text(text)
    assert result.action == "ESCALATE"
    assert rule in result.rules
    assert result.reasons


@pytest.mark.parametrize("text", ALLOW)
def test_ordinary_messages_are_allowed(text: str) -> None:
    result = check_text(text)
    assert result == GuardrailResult(action="ALLOW", reasons=[], rules=[]), result


def test_several_rules_fire_together() -> None:
    result = check_text("I'm 16, text me at 06 12 34 56 78 and let's meet up")
    assert result.action == "ESCALATE"
    assert set(result.rules) == {"minors", "off_platform_contact", "real_life_meeting"}


class _Broken:
    name = "broken"

    def check(self, text: str) -> str | None:
        raise RuntimeError("boom")


def test_a_rule_that_raises_escalates_fail_closed() -> None:
    result = check_text("a perfectly harmless message", [*DEFAULT_RULES, _Broken()])
    assert result.action == "ESCALATE"
    assert result.reasons == ["guardrail error"]
    assert result.rules == ["broken"]


def test_a_limiter_that_raises_escalates_fail_closed() -> None:
    class BrokenLimiter(FrequencyLimiter):
        def check(self, tenant: str, fan_id: str) -> GuardrailResult:
            raise RuntimeError("counter unavailable")

    result = Guardrails(limiter=BrokenLimiter()).check_frequency("t", "f")
    assert (result.action, result.reasons) == ("ESCALATE", ["guardrail error"])


def test_frequency_limit_per_tenant_and_fan_within_a_window() -> None:
    now = [1000.0]
    limiter = FrequencyLimiter(max_drafts=3, window_s=60, clock=lambda: now[0])
    limiter.record("t1", "fan", 3)
    blocked = limiter.check("t1", "fan")
    assert blocked.action == "ESCALATE" and blocked.rules == ["frequency_limit"]
    assert limiter.check("t1", "other-fan").allowed  # another fan
    assert limiter.check("t2", "fan").allowed  # the same fan id for another tenant
    now[0] += 61  # the window slid past the drafts
    assert limiter.check("t1", "fan").allowed
    assert limiter.remaining("t1", "fan") == 3


def test_combine_keeps_every_reason_once() -> None:
    a = GuardrailResult.escalate(["a phone number"], ["off_platform_contact"])
    b = GuardrailResult.escalate(["a phone number", "a minor"], ["off_platform_contact", "minors"])
    combined = GuardrailResult.combine([GuardrailResult(), a, b])
    assert combined.action == "ESCALATE"
    assert combined.reasons == ["a phone number", "a minor"]
    assert combined.rules == ["off_platform_contact", "minors"]
    assert GuardrailResult.combine([GuardrailResult(), GuardrailResult()]).allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me: jo.doe+fans@example.co.uk", "mail me: [email]"),
        ("call 06 12 34 56 78 now", "call [phone] now"),
        ("call 06.12.34.56.78", "call [phone]"),
        ("call +33 6 12 34 56 78", "call [phone]"),
        ("call 0033 612345678", "call [phone]"),
        ("call (555) 123-4567", "call [phone]"),
        ("card 4111 1111 1111 1111 exp 12/29", "card [card] exp 12/29"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("card 5500000000000004", "card [card]"),
    ],
)
def test_redact_pii(text: str, expected: str) -> None:
    assert redact_pii(text) == expected


def test_a_number_failing_luhn_is_left_untouched() -> None:
    for text in ("order 4111 1111 1111 1112 shipped", "ref 1234567812345678"):
        assert redact_pii(text) == text


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "I tipped 20 dollars on 12/05 at 10:30, merci !"
    assert redact_pii(text) == text
