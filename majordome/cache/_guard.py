"""The semantic-hit guard: two prompts may share an answer only when the numbers, dates and
quantities they mention are the same.

Sentence embeddings place "a 20 € discount" next to "a 50 € discount"; the guard extracts a
canonical fingerprint of such tokens (digits, number words and month/day names in English and
French) and a semantic hit requires equal fingerprints. It is conservative: "1,000" and "1000"
differ, which costs a miss, never a wrong answer.
"""

from __future__ import annotations

import re

__all__ = ["content_of", "guard_of", "numbers_of", "strict_guard_of"]

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


# Function words, greetings and politeness, and the generic verbs of a request ("write", "give
# me"), in English and French: what a rephrasing of the same request may add, drop or swap.
_FILLER = frozenset(
    """
    a an the of to for in on at by with from and or but is are be was were it this that these those
    my your our their his her its me you we they i he she him them us do does did can could would will
    shall should may might must please pls plz hey hi hello just kindly quick quickly some any about
    into as so up out there here what which who how let let's i'm it's give get make write tell
    le la les l un une des de du d au aux et ou mais est sont être ai as avons avez ont ce cet cette
    ces mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs je j tu il elle on nous vous
    ils elles m te t se s lui y en qui que qu quoi dont où pour par sur dans avec chez stp svp merci
    peux pourrais peut pouvez pourriez veux voudrais bien juste vite moi toi donne donner fais faire
    écris écrire rédige rédiger dis dire
    """.split()
)


def _stem(word: str) -> str:
    word = word.replace("ise", "ize").replace("our", "or")  # British and American spellings
    for suffix in ("es", "s", "x"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_of(text: str) -> tuple[str, ...]:
    """The content words of ``text`` in their order (lower-cased, lightly stemmed), without the
    filler a rephrasing may change: two requests with equal content words differ only in
    function words, politeness and spelling variants. The order is kept: "the audio is fine but
    the video freezes" and "the video is fine but the audio freezes" have the same words and
    embed alike (cosine > 0.99 with MiniLM), and mean opposite things."""
    words = _WORD.findall(text.lower())
    return tuple(_stem(w) for w in words if w not in _FILLER)


def strict_guard_of(text: str) -> tuple[str, ...]:
    """:func:`guard_of` plus :func:`content_of`: the guard of the Majordome's semantic lookup. A
    similar request may share an answer only when it asks with the same content words, numbers,
    negations and names; the embedding then judges what the order of the words does."""
    return (*guard_of(text), *(f"c{w}" for w in content_of(text)))
