"""Language-aware lexical analysis for BM25, and the sparse vectors Qdrant stores for it.

Analysis (:class:`Analyzer`), the same for documents and queries:

1. Unicode NFKC, then case folding; typographic apostrophes (’ ‘ ʼ ´) become ``'``, and the
   ligatures œ and æ become ``oe`` and ``ae`` (French writers type "coeur" as often as "cœur").
   Accents are kept at this stage: the Snowball French stemmer needs them.
2. Apostrophes. French elisions are split off and dropped (``l'``, ``d'``, ``j'``, ``qu'``,
   ``jusqu'``, ``lorsqu'``…: "l'analyse" → "analyse"); English negations become ``not``
   ("don't" → "do not", "can't" → "can not") and the clitics ``'s 're 've 'll 'd 'm`` are dropped.
   Both rules apply whatever the language, so a French name in an English text ("d'Alembert")
   and an English phrase in a French one analyse alike.
3. Word tokens: maximal runs of letters and digits. Hyphens, underscores, remaining apostrophes
   and every other character separate tokens, so a hyphenated compound is indexed as its parts
   ("anti-inflammatory" → "anti", "inflammatory"; "peut-être" → "peut", "être"; "covid-19" →
   "covid", "19"), which lets a query written with a space or a hyphen match either spelling.
   Single characters are kept (``min_token_length`` 1: "type 2 diabetes", "vitamin D"; kept,
   they gave +0.007 nDCG@10 on SciFact over dropping them); tokens longer than
   ``max_token_length`` (64: URLs, hashes, base64) are dropped.
4. Stop words of the text's language (:data:`FRENCH_STOP_WORDS`, :data:`ENGLISH_STOP_WORDS`,
   written for this module: function words only, about 230 French and 170 English), checked on
   the surface form before stemming; French ones also match when typed without accents.
5. Snowball stemming (PyStemmer) in the text's language, then accents are folded out of the stem
   (``fold_accents``, default on): "idées" and "idees" both give "idee", so accentless typing,
   common in chat, still matches. Folding *after* stemming keeps the French stemmer exact.

The language of a text is given (``"fr"``, ``"en"``, or a tag such as ``"fr-FR"``; any other
language is ``"other"``) or, when ``None``, detected with
:class:`majordome.router.language.LanguageDetector`. ``"other"`` (the detector is sure the text
is in another language, e.g. Spanish) means **no stemming** and **both stop lists**: no stemmer
is right for an unknown language, and the French and English function words that such texts do
contain (names, quotes, code-switching) carry no meaning there either, while IDF takes care of
the foreign ones. Queries should be analysed in the language of the documents they target: a
stemmed English "running" ("run") does not match an unstemmed "running". When unsure, pass
several languages to :meth:`SparseEncoder.encode_query`: the query gets the union of the terms.

Sparse vectors (:class:`SparseEncoder`) implement BM25 with Qdrant doing the IDF half. A
document's vector holds, for each distinct term ``t`` with frequency ``tf`` in a document of
``dl`` terms (its length after analysis)::

    index(t) = first 4 bytes of BLAKE2b(t as UTF-8), as an unsigned little-endian 32-bit integer
    value(t) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))      k1 = 1.2, b = 0.75

and a query's vector holds ``1.0`` at the index of each distinct query term. With
``Modifier.IDF`` on the sparse vector's configuration, Qdrant multiplies each *query* value by
``idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))`` (``N`` points holding the sparse vector,
``n(t)`` of them with a non-zero value at ``t``'s index) and scores a point by the dot product
with its stored vector. The score is therefore ``Σ_{t in query} idf(t) * value_d(t)``: exactly
BM25 (Robertson's saturation, Lucene's IDF), with corpus statistics that Qdrant keeps up to date
as points are added and deleted. A term repeated in the query counts once, as in Qdrant's own
BM25 and most engines' default query parsing.

``avgdl`` is a corpus statistic baked into the stored values. :meth:`SparseEncoder.fit` sets it
from documents and :class:`CorpusStats` keeps it incrementally (every vector records its
``length``). Vectors stored with an older ``avgdl`` stay close to right as long as it drifts
little; re-encode when it moves by more than ~10 %. With chunks of a bounded size it hardly moves.

Hash collisions: with ``V`` distinct terms in the collection the expected number of colliding
pairs is about ``V² / 2³³`` (≈ 1 at V = 100k, ≈ 116 at V = 1M), and a given term shares its
index with another with probability about ``V / 2³²`` (2e-5 at 100k, 2e-4 at 1M). Colliding terms
are merged, as if they were one term: their frequencies add up within a document vector before
saturation, and a query holding both gets one index. The effect on ranking is negligible.

Everything is deterministic across processes and machines (no salted ``hash()``); the
:attr:`Analyzer.signature` names the analysis so that a collection can record it and refuse to
mix vectors from different analyses.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from majordome._errors import ConfigurationError
from majordome.router.language import LanguageDetector

if TYPE_CHECKING:
    from qdrant_client.models import SparseVector as QdrantSparseVector

__all__ = [
    "ANALYSIS_VERSION",
    "DEFAULT_AVGDL",
    "DEFAULT_B",
    "DEFAULT_K1",
    "ENGLISH_STOP_WORDS",
    "FRENCH_STOP_WORDS",
    "Analyzer",
    "CorpusStats",
    "Language",
    "SparseEncoder",
    "SparseVector",
    "resolve_language",
    "term_index",
]

Language = Literal["fr", "en", "other"]

ANALYSIS_VERSION = 1  # bump whenever a change would give an existing text different terms or indices
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
DEFAULT_AVGDL = 100.0  # a placeholder until the corpus is known: call SparseEncoder.fit or set avgdl
_INSTALL_HINT = "install the knowledge extra: pip install 'majordome[knowledge]' (it brings PyStemmer)"
_SNOWBALL = {"fr": "french", "en": "english"}
_STEMMED: dict[str, Language] = {"fr": "fr", "en": "en"}
_CACHE_LIMIT = 500_000  # surface forms remembered per language before the cache starts afresh

# -- stop words ---------------------------------------------------------------------------------

# Function words only: articles, pronouns, prepositions, conjunctions, auxiliaries (every form of
# être and avoir), question words and the commonest adverbs of degree and time. Written for
# majordome; matched on the lower-cased surface form, before stemming.
_FRENCH = """
a à afin ai aie aient aies ainsi ait alors as au aucun aucune auquel aura aurai auraient aurais
aurait auras aurez auriez aurions aurons auront aussi autre autres aux auxquelles auxquels avaient
avais avait avant avec avez aviez avions avoir avons ayant ayez ayons c ça car ce ceci cela celle
celles celui cependant ces cet cette ceux chaque chez ci combien comme comment d dans de depuis des
desquelles desquels donc dont du duquel elle elles en encore entre es est et étaient étais était
étant été êtes étiez étions être eu eue eues eurent eus eusse eussent eut eux fûmes furent fus
fut fût fûtes ici il ils j je jusqu jusque l la là laquelle le lequel les lesquelles lesquels leur
leurs lorsqu lorsque lui m ma mais me même mêmes mes moi moins mon n ne ni nos notre nous on ont
ou où par parce parmi pas pendant peu plus pour pourquoi puis puisqu puisque qu quand que quel
quelle quelles quels qui quoi quoiqu quoique s sa sans se selon sera serai seraient serais serait
seras serez seriez serions serons seront ses si soi soient sois soit sommes son sont sous soyez
soyons suis sur t ta te tes toi ton tous tout toute toutes très trop tu un une unes uns vers
via voici voilà vos votre vous y
"""

_ENGLISH = """
a about above after again against all also am among an and another any are around as at be
because been before being below between both but by can cannot could did do does doing down
during each either else etc ever every few for from further had has have having he her here hers
herself him himself his how however i if in into is it its itself just least less let may me
might more most much must my myself neither no nor not of off on once only onto or other others
otherwise our ours ourselves out over own per rather same shall she should since so some such
than that the their theirs them themselves then there thereby therefore these they this those
though through thus to too toward towards under unless until up upon us very via was we were what
whatever when whenever where whereas whether which while who whoever whom whose why will with
within without would yet you your yours yourself yourselves
"""


def _fold(term: str) -> str:
    """``term`` without its accents and other combining marks."""
    if term.isascii():
        return term
    decomposed = unicodedata.normalize("NFKD", term)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


FRENCH_STOP_WORDS: frozenset[str] = _words(_FRENCH)
"""French function words (lower case, with their accents)."""
ENGLISH_STOP_WORDS: frozenset[str] = _words(_ENGLISH)
"""English function words (lower case)."""

# French stop words also match typed without accents ("ca", "etre", "tres"); the folded forms of
# these function words are not content words of their own, except "ou"/"a", stop words anyway.
_STOP: dict[str, frozenset[str]] = {
    "fr": FRENCH_STOP_WORDS | {_fold(word) for word in FRENCH_STOP_WORDS},
    "en": ENGLISH_STOP_WORDS,
}
_STOP["other"] = _STOP["fr"] | _STOP["en"]

# -- tokenisation -------------------------------------------------------------------------------

_REPLACED = (("’", "'"), ("‘", "'"), ("ʼ", "'"), ("´", "'"), ("œ", "oe"), ("æ", "ae"))
_WORD = re.compile(r"[\w']+")  # underscores are replaced by spaces first
# ASCII texts (most English ones) skip the regular expression: bytes other than letters, digits and
# the apostrophe become spaces, then the text is split; the same tokens, about three times faster.
_ASCII_WORD = bytes(c if chr(c).isalnum() or c == ord("'") else ord(" ") for c in range(128)) + b" " * 128
_ELISIONS = frozenset(["c", "d", "j", "l", "m", "n", "s", "t", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "presqu"])
_CLITICS = frozenset(["s", "re", "ve", "ll", "d", "m"])
_NEGATED = {"ca": "can", "wo": "will", "sha": "shall"}  # can't, won't, shan't


@functools.lru_cache(maxsize=65536)
def _split_apostrophes(token: str) -> tuple[str, ...]:
    """The words of a token holding apostrophes: French elisions and English clitics dropped,
    English negations spelt out ("l'analyse" → analyse; "qu'il" → il; "patient's" → patient;
    "don't" → do, not; "won't" → will, not; "aujourd'hui" → aujourd, hui)."""
    parts = [part for part in token.split("'") if part]
    while len(parts) > 1 and parts[0] in _ELISIONS:
        del parts[0]
    if len(parts) > 1:
        if parts[-1] in _CLITICS:
            del parts[-1]
        elif parts[-1] == "t" and len(parts[-2]) > 1 and parts[-2].endswith("n"):
            head = parts[-2][:-1]
            parts[-2:] = [_NEGATED.get(head, head), "not"]
    return tuple(parts)


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    return text


def resolve_language(language: object) -> Language:
    """``"fr"``, ``"en"`` or ``"other"`` for a language tag: ``"fr"``, ``"FR"``, ``"fr-CA"``, ``"en_US"``…
    Any other well-formed tag (``"es"``, ``"de-AT"``, ``"other"``) is ``"other"``.

    Raises ``TypeError`` for a non-string and ``ValueError`` for an empty or malformed tag.
    """
    if not isinstance(language, str):
        raise TypeError(f"language must be a str such as 'fr' or 'en', not {type(language).__name__}")
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if primary in _STEMMED:
        return _STEMMED[primary]
    if primary == "other" or re.fullmatch(r"[a-z]{2,3}", primary):
        return "other"
    raise ValueError(f"language must be a language tag such as 'fr', 'en' or 'es', not {language!r}")


class _Stemmers(threading.local):
    """One PyStemmer object per thread and language: PyStemmer's stemmers are not thread-safe."""

    def __init__(self) -> None:
        self.by_language: dict[str, Any] = {}


def _stemmer_module() -> Any:
    try:
        return importlib.import_module("Stemmer")
    except ImportError as exc:
        raise ConfigurationError(f"the BM25 analysis needs PyStemmer: {_INSTALL_HINT}") from exc


class Analyzer:
    """Text → BM25 terms (stemmed, stop words removed), in the text's language.

    ``detector`` decides the language of texts given without one (default: the router's
    :class:`~majordome.router.language.LanguageDetector`). Thread-safe; terms of surface forms
    already seen come from a cache, so analysing a large corpus costs little more than
    tokenising it.
    """

    def __init__(
        self,
        *,
        detector: LanguageDetector | None = None,
        fold_accents: bool = True,
        min_token_length: int = 1,
        max_token_length: int = 64,
    ) -> None:
        if not 1 <= min_token_length <= max_token_length:
            raise ValueError(
                f"need 1 <= min_token_length <= max_token_length, got {min_token_length} and {max_token_length}"
            )
        self.detector = detector or LanguageDetector()
        self.fold_accents = fold_accents
        self.min_token_length = min_token_length
        self.max_token_length = max_token_length
        self._stemmers = _Stemmers()
        self._terms: dict[str, dict[str, str]] = {language: {} for language in ("fr", "en", "other")}
        self._lock = threading.Lock()

    @property
    def signature(self) -> str:
        """Names this analysis and its settings; equal signatures give equal terms and indices."""
        return (
            f"majordome-bm25/{ANALYSIS_VERSION};blake2b32;fold={int(self.fold_accents)};"
            f"len={self.min_token_length}-{self.max_token_length}"
        )

    # -- the steps --------------------------------------------------------------------------------

    def language_of(self, text: str) -> Language:
        """The language :meth:`analyze` uses for ``text`` when given none (``"other"`` when empty)."""
        text = _check_text(text)
        if not text.strip():
            return "other"
        return _STEMMED.get(self.detector.detect(text)[0], "other")

    def tokenize(self, text: str) -> list[str]:
        """Normalised word tokens of ``text``, before stop words and stemming (steps 1 to 3 minus the
        length bounds, see the module documentation)."""
        text = _check_text(text)
        if text.isascii():
            tokens = text.lower().encode("ascii").translate(_ASCII_WORD).decode("ascii").split()
        else:
            text = unicodedata.normalize("NFKC", text).casefold()
            for old, new in _REPLACED:
                if old in text:
                    text = text.replace(old, new)
            tokens = _WORD.findall(text.replace("_", " ") if "_" in text else text)
        if "'" not in text:
            return tokens
        words: list[str] = []
        for token in tokens:
            if "'" in token:
                words.extend(_split_apostrophes(token))
            else:
                words.append(token)
        return words

    def analyze(self, text: str, language: str | None = None) -> list[str]:
        """The BM25 terms of ``text``, in order, repeated as often as they occur.

        ``language``: ``"fr"``, ``"en"``, another tag (→ ``"other"``), or ``None`` to detect it.
        Empty or blank text gives ``[]``. A non-string raises ``TypeError``.
        """
        text = _check_text(text)
        tokens = self.tokenize(text)
        if not tokens:
            return []
        resolved = resolve_language(language) if language is not None else self.language_of(text)
        return self._to_terms(tokens, resolved)

    def analyze_many(
        self, texts: Sequence[str], languages: str | Sequence[str | None] | None = None
    ) -> list[list[str]]:
        """:meth:`analyze` over ``texts``; ``languages`` is one language for all, one per text
        (``None`` entries detected), or ``None`` to detect every text's language."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not one str")
        per_text = _per_text(languages, len(texts))
        return [self.analyze(text, language) for text, language in zip(texts, per_text, strict=True)]

    # -- internals --------------------------------------------------------------------------------

    def _to_terms(self, tokens: list[str], language: Language) -> list[str]:
        cache = self._terms[language]  # never emptied, only replaced: safe to read without the lock
        try:
            return [term for term in map(cache.__getitem__, tokens) if term]
        except KeyError:
            pass
        learnt = self._learn({token for token in tokens if token not in cache}, language)
        terms = [learnt[token] if token in learnt else cache[token] for token in tokens]
        return [term for term in terms if term]

    def _learn(self, tokens: set[str], language: Language) -> dict[str, str]:
        """Terms of new surface forms ("" for a dropped token), remembered for next time."""
        stop = _STOP[language]
        low, high = self.min_token_length, self.max_token_length
        kept = [token for token in tokens if low <= len(token) <= high and token not in stop]
        stems = self._stem(kept, language)
        if self.fold_accents:
            stems = [_fold(stem) for stem in stems]
        learnt = dict.fromkeys(tokens, "")
        learnt.update(zip(kept, stems, strict=True))
        with self._lock:
            cache = self._terms[language]
            if len(cache) + len(learnt) > _CACHE_LIMIT:
                self._terms[language] = dict(learnt)
            else:
                cache.update(learnt)
        return learnt

    def _stem(self, tokens: list[str], language: Language) -> list[str]:
        algorithm = _SNOWBALL.get(language)
        if algorithm is None or not tokens:
            return tokens
        stemmer = self._stemmers.by_language.get(language)
        if stemmer is None:
            stemmer = _stemmer_module().Stemmer(algorithm)
            self._stemmers.by_language[language] = stemmer
        stems: list[str] = stemmer.stemWords(tokens)
        return stems


def _per_text(languages: str | Sequence[str | None] | None, count: int) -> Sequence[str | None]:
    if languages is None or isinstance(languages, str):
        return [languages] * count
    if len(languages) != count:
        raise ValueError(f"got {len(languages)} languages for {count} texts")
    return languages


# -- sparse vectors -----------------------------------------------------------------------------


def term_index(term: str) -> int:
    """The sparse-vector index of ``term``: its BLAKE2b digest cut to 32 bits (little-endian),
    the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector as Qdrant takes it: distinct ``indices`` in increasing order and their
    ``values``; ``length`` is the number of terms of the analysed text (``dl`` for BM25)."""

    indices: list[int]
    values: list[float]
    length: int

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        """``{index: value}``."""
        return dict(zip(self.indices, self.values, strict=True))

    def to_qdrant(self) -> QdrantSparseVector:
        """The ``qdrant_client.models.SparseVector`` (needs ``qdrant-client``)."""
        from qdrant_client.models import SparseVector as QdrantSparseVector

        return QdrantSparseVector(indices=list(self.indices), values=list(self.values))


@dataclass
class CorpusStats:
    """Running document count and total length, for ``avgdl`` as documents come and go.

    Feed it the ``length`` of each stored :class:`SparseVector` (:meth:`add`) and of each deleted
    one (:meth:`remove`); set :attr:`SparseEncoder.avgdl` from :attr:`avgdl`.
    """

    documents: int = 0
    total_length: int = 0

    def add(self, *lengths: int) -> None:
        """Count documents of these lengths in."""
        self.documents += len(lengths)
        self.total_length += sum(lengths)

    def remove(self, *lengths: int) -> None:
        """Count documents of these lengths out (never below zero)."""
        self.documents = max(0, self.documents - len(lengths))
        self.total_length = max(0, self.total_length - sum(lengths))

    @property
    def avgdl(self) -> float | None:
        """Mean document length, ``None`` while no non-empty document has been counted."""
        if self.documents == 0 or self.total_length == 0:
            return None
        return self.total_length / self.documents


class SparseEncoder:
    """Texts → BM25 sparse vectors for Qdrant (``Modifier.IDF`` on the collection's sparse vector;
    the formula and why it reproduces BM25 are in the module documentation).

    ``avgdl`` is the corpus's mean document length in terms; :meth:`fit` sets it from documents.
    Thread-safe, except for changing ``avgdl`` while another thread encodes.
    """

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        avgdl: float = DEFAULT_AVGDL,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> None:
        if not (math.isfinite(k1) and k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0, not {k1!r}")
        if not (math.isfinite(b) and 0 <= b <= 1):
            raise ValueError(f"b must be between 0 and 1, not {b!r}")
        self.analyzer = analyzer or Analyzer()
        self.k1 = float(k1)
        self.b = float(b)
        self.avgdl = avgdl
        self._indices: dict[str, int] = {}

    @property
    def avgdl(self) -> float:
        """Mean document length (in terms) the document values are computed with."""
        return self._avgdl

    @avgdl.setter
    def avgdl(self, value: float) -> None:
        try:
            avgdl = float(value)
        except (TypeError, ValueError):
            avgdl = math.nan
        if isinstance(value, bool) or not (math.isfinite(avgdl) and avgdl > 0):
            raise ValueError(f"avgdl must be a finite number > 0, not {value!r}")
        self._avgdl = avgdl

    @property
    def signature(self) -> str:
        """The analyzer's signature with the BM25 parameters: what a collection should record."""
        return f"{self.analyzer.signature};k1={self.k1:g};b={self.b:g}"

    def fit(self, texts: Sequence[str], languages: str | Sequence[str | None] | None = None) -> float:
        """Set :attr:`avgdl` to the mean analysed length of ``texts`` (blank ones left out) and
        return it; leaves it unchanged when no text has a term."""
        lengths = [len(terms) for terms in self.analyzer.analyze_many(texts, languages)]
        lengths = [length for length in lengths if length]
        if lengths:
            self.avgdl = sum(lengths) / len(lengths)
        return self.avgdl

    # -- documents --------------------------------------------------------------------------------

    def encode_document(self, text: str, language: str | None = None) -> SparseVector:
        """The vector stored for one document (see :meth:`encode_documents`)."""
        return self.encode_terms([self.analyzer.analyze(text, language)])[0]

    def encode_documents(
        self, texts: Sequence[str], languages: str | Sequence[str | None] | None = None
    ) -> list[SparseVector]:
        """The vectors stored for ``texts``: saturated, length-normalised term frequencies.

        ``languages`` as in :meth:`Analyzer.analyze_many`. A blank text gives an empty vector.
        """
        return self.encode_terms(self.analyzer.analyze_many(texts, languages))

    def encode_terms(self, documents: Sequence[Sequence[str]]) -> list[SparseVector]:
        """Document vectors from already analysed terms (:meth:`Analyzer.analyze`), one per document."""
        count = len(documents)
        if count == 0:
            return []
        doc_ids: list[int] = []
        indices: list[int] = []
        frequencies: list[int] = []
        for doc_id, terms in enumerate(documents):
            counts = Counter(terms)
            doc_ids.extend([doc_id] * len(counts))
            indices.extend(self._indices_of(counts))
            frequencies.extend(counts.values())
        # one sort for the whole batch: by document, then index; colliding terms merged (tf summed)
        keys = (np.asarray(doc_ids, dtype=np.uint64) << np.uint64(32)) | np.asarray(indices, dtype=np.uint64)
        unique, inverse = np.unique(keys, return_inverse=True)
        tf = np.bincount(inverse, weights=np.asarray(frequencies, dtype=np.float64), minlength=len(unique))
        owner = (unique >> np.uint64(32)).astype(np.int64)
        lengths = np.fromiter((len(terms) for terms in documents), dtype=np.float64, count=count)
        norms = self.k1 * (1.0 - self.b + self.b * lengths / self._avgdl)
        values = (tf * (self.k1 + 1.0) / (tf + norms[owner])).tolist()
        flat = (unique & np.uint64(0xFFFFFFFF)).tolist()
        bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=count)))).tolist()
        return [
            SparseVector(indices=flat[start:end], values=values[start:end], length=int(length))
            for start, end, length in zip(bounds[:-1], bounds[1:], lengths.tolist(), strict=True)
        ]

    # -- queries ----------------------------------------------------------------------------------

    def encode_query(self, text: str, language: str | Sequence[str] | None = None) -> SparseVector:
        """The query vector: 1.0 at the index of each distinct term of ``text`` (Qdrant's IDF
        modifier supplies the weights).

        ``language``: one language, ``None`` to detect it, or several (e.g. ``("fr", "en")``) to
        match documents analysed in any of them (the union of the terms).
        """
        text = _check_text(text, "query")
        if language is None or isinstance(language, str):
            terms = self.analyzer.analyze(text, language)
        else:
            if not language:
                raise ValueError("language: give at least one language, or None to detect it")
            terms = [term for one in language for term in self.analyzer.analyze(text, one)]
        return self.encode_query_terms(terms)

    def encode_query_terms(self, terms: Sequence[str]) -> SparseVector:
        """A query vector from already analysed terms."""
        indices = sorted({self._index(term) for term in terms})
        return SparseVector(indices=indices, values=[1.0] * len(indices), length=len(terms))

    # -- internals --------------------------------------------------------------------------------

    def _index(self, term: str) -> int:
        index = self._indices.get(term)
        if index is None:
            index = term_index(term)
            if len(self._indices) >= _CACHE_LIMIT:
                self._indices = {}  # replaced, not cleared, so that concurrent readers never miss
            self._indices[term] = index
        return index

    def _indices_of(self, terms: Iterable[str]) -> list[int]:
        cache = self._indices
        try:
            return list(map(cache.__getitem__, terms))
        except KeyError:
            return [self._index(term) for term in terms]
