"""Language of a request: ``fr``, ``en`` or ``other``, with a confidence.

Backed by ``py3langid`` (an offline naive-Bayes identifier whose model ships in its wheel),
restricted to the languages creators on the platform actually write. Short, slangy messages
("slt ca va", "lol ok") are where identifiers err; the platform works in French and English,
so another language is reported only when the identifier is sure of it on a text long enough
to tell, and otherwise the likelier of French and English wins.
"""

from __future__ import annotations

import threading
from typing import Any

from majordome.router.text_features import normalise_text

__all__ = ["LanguageDetector"]

_CANDIDATES = ["fr", "en", "es", "de", "it", "pt", "nl"]
# Words that settle French vs English on short texts where character statistics cannot.
_FRENCH = frozenset(
    [
        "je",
        "tu",
        "il",
        "elle",
        "nous",
        "vous",
        "ils",
        "mon",
        "ma",
        "mes",
        "ton",
        "ta",
        "tes",
        "son",
        "sa",
        "ses",
        "le",
        "la",
        "les",
        "un",
        "une",
        "des",
        "du",
        "de",
        "et",
        "ou",
        "est",
        "sont",
        "pas",
        "ne",
        "que",
        "qui",
        "quoi",
        "pour",
        "avec",
        "sur",
        "dans",
        "ce",
        "cette",
        "ces",
        "mais",
        "donc",
        "car",
        "stp",
        "svp",
        "merci",
        "bonjour",
        "salut",
        "slt",
        "bcp",
        "tres",
        "trop",
        "fais",
        "faire",
        "peux",
        "veux",
        "combien",
        "pourquoi",
        "comment",
        "quand",
        "moi",
        "toi",
        "ca",
        "cest",
        "jai",
        "abonnes",
        "mdr",
        "ptdr",
        "jsp",
        "tkt",
        "wsh",
    ]
)
_ENGLISH = frozenset(
    [
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "my",
        "your",
        "his",
        "her",
        "our",
        "the",
        "a",
        "an",
        "and",
        "or",
        "is",
        "are",
        "not",
        "that",
        "what",
        "who",
        "for",
        "with",
        "on",
        "in",
        "this",
        "these",
        "but",
        "so",
        "please",
        "thanks",
        "thx",
        "hello",
        "hi",
        "hey",
        "very",
        "too",
        "do",
        "make",
        "can",
        "want",
        "how",
        "why",
        "when",
        "me",
        "it",
        "its",
        "im",
        "subscribers",
    ]
)


class LanguageDetector:
    """``detect(text) -> (language, confidence)`` with language in ``fr``, ``en``, ``other``."""

    def __init__(self, other_threshold: float = 0.9, other_min_chars: int = 20) -> None:
        self.other_threshold = other_threshold
        self.other_min_chars = other_min_chars
        self._identifier: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        if self._identifier is None:
            with self._lock:
                if self._identifier is None:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier

                    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                    identifier.set_languages(_CANDIDATES)
                    self._identifier = identifier
        return self._identifier

    def detect(self, text: str) -> tuple[str, float]:
        text = text.strip()
        if not text:
            return "other", 0.0
        ranked = dict(self._model().rank(text[:400]))  # the first sentences tell; the rest only costs
        top, top_p = max(ranked.items(), key=lambda kv: kv[1])
        if top not in ("fr", "en") and top_p >= self.other_threshold and len(text) >= self.other_min_chars:
            return "other", float(top_p)
        words = normalise_text(text).replace("'", " ").split()
        cue = sum(w in _FRENCH for w in words) - sum(w in _ENGLISH for w in words)
        fr, en = ranked.get("fr", 0.0), ranked.get("en", 0.0)
        total = fr + en or 1.0
        fr_share = fr / total
        if cue:  # function words decide short texts; they only nudge long ones
            weight = 0.5 if len(words) <= 6 else 0.15
            fr_share = min(1.0, max(0.0, fr_share + weight * (1 if cue > 0 else -1)))
        return ("fr", fr_share) if fr_share >= 0.5 else ("en", 1.0 - fr_share)
