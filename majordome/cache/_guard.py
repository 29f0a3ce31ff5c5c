"""The semantic-hit guard: two prompts may share an answer only when the numbers, dates and
quantities they mention are the same.

Sentence embeddings place "a 20 € discount" next to "a 50 € discount"; the guard extracts a
canonical fingerprint of such tokens (digits, number words and month/day names in English and
French) and a semantic hit requires equal fingerprints. It is conservative: "1,000" and "1000"
differ, which costs a miss, never a wrong answer.
"""

from __future__ import annotations

import re

__all__ = ["guard_of", "numbers_of"]

_NUMBER = re.compile(r"\d+(?:[.,:/h]\d+)*")
_WORD = re.compile(r"[^\W\d_]+")

_WORDS: dict[str, str] = {}
for _index, _group in enumerate(
    [
        ("zero", "zéro", "none", "aucun", "aucune"),
        ("one", "single"),
        ("two", "deux"),
        ("three", "trois"),
        ("four", "quatre"),
        ("five", "cinq"),
        ("six",),
        ("seven", "sept"),
        ("eight", "huit"),
        ("nine", "neuf"),
        ("ten", "dix"),
        ("eleven", "onze"),
        ("twelve", "douze", "dozen", "douzaine"),
        ("fifteen", "quinze"),
        ("twenty", "vingt"),
        ("thirty", "trente"),
        ("forty", "quarante"),
        ("fifty", "cinquante"),
        ("hundred", "cent", "cents"),
        ("thousand", "mille"),
        ("million", "millions"),
        ("half", "moitié", "demi", "demie"),
        ("first", "premier", "première"),
        ("deuxième",),
        ("third", "troisième"),
        ("last", "dernier", "dernière"),
        ("next", "prochain", "prochaine"),
        ("january", "janvier"),
        ("february", "février"),
        ("march", "mars"),
        ("april", "avril"),
        ("mai",),
        ("june", "juin"),
        ("july", "juillet"),
        ("august", "août"),
        ("september", "septembre"),
        ("october", "octobre"),
        ("november", "novembre"),
        ("december", "décembre"),
        ("monday", "lundi"),
        ("tuesday", "mardi"),
        ("wednesday", "mercredi"),
        ("thursday", "jeudi"),
        ("friday", "vendredi"),
        ("saturday", "samedi"),
        ("sunday", "dimanche"),
        ("today", "aujourd'hui"),
        ("tomorrow", "demain"),
        ("yesterday", "hier"),
        ("week", "semaine"),
        ("month", "mois"),
        ("year", "année", "ans"),
    ]
):
    for _word in _group:
        _WORDS[_word] = f"w{_index}"


def numbers_of(text: str) -> tuple[str, ...]:
    """The sorted fingerprint of the numbers, number words and dates of ``text``."""
    lowered = text.lower()
    found = [f"d{m.group(0).replace(',', '.')}" for m in _NUMBER.finditer(lowered)]
    found.extend(_WORDS[w] for w in _WORD.findall(lowered) if w in _WORDS)
    return tuple(sorted(found))


_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "nothing",
        "nobody",
        "without",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "didn't",
        "won't",
        "isn't",
        "aren't",
        "wasn't",
        "ne",
        "n'",
        "pas",
        "plus",
        "jamais",
        "rien",
        "personne",
        "sans",
        "aucun",
        "aucune",
        "non",
    }
)
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|n'")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\"'«“]\s*)$")


def guard_of(text: str) -> tuple[str, ...]:
    """A stricter fingerprint: :func:`numbers_of`, plus negation markers (English and French)
    and the capitalised words that do not start a sentence (names of people and places)."""
    found = list(numbers_of(text))
    for match in _TOKEN.finditer(text):
        word = match.group(0)
        lowered = word.lower()
        if lowered in _NEGATIONS or lowered.endswith("n't"):
            found.append("neg")
        elif word[0].isupper() and not _SENTENCE_START.search(text[: match.start()]) and lowered not in _WORDS:
            found.append(f"n{lowered}")
    return tuple(sorted(found))
