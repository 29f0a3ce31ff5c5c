from __future__ import annotations

import pytest

from majordome.router import LanguageDetector

DETECTOR = LanguageDetector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bonjour, tu peux m'aider à écrire une légende pour mon post ?", "fr"),
        ("Can you help me write a caption for my post?", "en"),
        ("slt ca va", "fr"),
        ("merci bcp", "fr"),
        ("hey how are you", "en"),
        ("fais moi un post IG stp", "fr"),
        ("Hola, ¿me puedes ayudar con una descripción para mi foto de la playa?", "other"),
        ("Ciao, puoi aiutarmi a scrivere una didascalia per la mia foto?", "other"),
        ("je veux un caption pour mon reel de fitness", "fr"),
    ],
)
def test_fr_en_other(text: str, expected: str) -> None:
    language, confidence = DETECTOR.detect(text)
    assert language == expected
    assert 0.5 <= confidence <= 1.0


def test_empty_text_is_other_with_no_confidence() -> None:
    assert DETECTOR.detect("   ") == ("other", 0.0)


def test_mixed_french_and_english_is_one_of_them_with_less_confidence() -> None:
    language, confidence = DETECTOR.detect("write me a caption en français please")
    assert language in ("fr", "en") and confidence < 0.9
