from __future__ import annotations

import math
import threading

import pytest

from majordome.knowledge import analysis
from majordome.knowledge.analysis import (
    ENGLISH_STOP_WORDS,
    FRENCH_STOP_WORDS,
    Analyzer,
    CorpusStats,
    SparseEncoder,
    SparseVector,
    resolve_language,
    term_index,
)
from majordome.router.language import LanguageDetector

K1, B = 1.2, 0.75


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def bm25_value(tf: int, dl: int, avgdl: float) -> float:
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))


# -- analysis -----------------------------------------------------------------------------------


def test_french_elisions_are_dropped_and_inflections_share_a_stem(analyzer: Analyzer) -> None:
    assert analyzer.tokenize("L'analyse qu'ils mangeaient jusqu'à l’aube") == [
        "analyse",
        "ils",
        "mangeaient",
        "à",
        "aube",
    ]
    terms = analyzer.analyze("Les enfants mangeaient des pommes ; ils vont manger", "fr")
    assert terms == ["enfant", "mang", "pomm", "vont", "mang"]
    assert analyzer.analyze("mangeaient", "fr") == analyzer.analyze("manger", "fr") == analyzer.analyze("mangé", "fr")
    assert analyzer.analyze("l'analyse", "fr") == analyzer.analyze("analyses", "fr")


def test_accents_are_folded_after_stemming_and_ligatures_expanded(analyzer: Analyzer) -> None:
    assert analyzer.analyze("idées", "fr") == analyzer.analyze("idees", "fr") == analyzer.analyze("IDÉE", "fr")
    assert analyzer.analyze("cœur", "fr") == analyzer.analyze("coeur", "fr")
    assert analyzer.analyze("ça va très bien", "fr") == analyzer.analyze("ca va tres bien", "fr") == ["va", "bien"]
    assert Analyzer(fold_accents=False).analyze("idées", "fr") != Analyzer(fold_accents=False).analyze("idees", "fr")


def test_english_stemming_contractions_and_hyphens(analyzer: Analyzer) -> None:
    assert analyzer.analyze("Running runners; he runs and will run", "en") == ["run", "runner", "run", "run"]
    assert analyzer.tokenize("They don't; it can't; the patient's won't") == [
        "they",
        "do",
        "not",
        "it",
        "can",
        "not",
        "the",
        "patient",
        "will",
        "not",
    ]
    assert analyzer.tokenize("anti-inflammatory COVID-19 snake_case") == [
        "anti",
        "inflammatory",
        "covid",
        "19",
        "snake",
        "case",
    ]
    assert analyzer.analyze("type 2 diabetes and vitamin D", "en") == ["type", "2", "diabet", "vitamin", "d"]


def test_unicode_is_normalised(analyzer: Analyzer) -> None:
    assert analyzer.tokenize("ＦＵＬＬ-width ﬁne café") == analyzer.tokenize("full width fine café")
    decomposed = "cafe\u0301"  # e + combining acute accent
    assert analyzer.tokenize(decomposed) == ["café"]
    assert analyzer.tokenize("x" * 65 + " ok") == ["x" * 65, "ok"]
    assert analyzer.analyze("x" * 65 + " ok", "en") == ["ok"]  # longer than max_token_length


def test_stop_words_are_removed(analyzer: Analyzer) -> None:
    assert analyzer.analyze("the and of to in is was with", "en") == []
    assert analyzer.analyze("le la les des du de et est sont été avoir être", "fr") == []
    assert 150 <= len(FRENCH_STOP_WORDS) <= 300 and 120 <= len(ENGLISH_STOP_WORDS) <= 250
    # each language its own list: "car" and "son" are English words, French function words
    assert analyzer.analyze("my son drives a car", "en") == ["son", "drive", "car"]
    assert analyzer.analyze("mon fils, son car", "fr") == ["fil"]


def test_explicit_and_detected_language(analyzer: Analyzer) -> None:
    french = "Les enfants mangeaient des pommes dans le jardin de leur grand-mère"
    english = "The children were eating apples in their grandmother's garden"
    assert analyzer.language_of(french) == "fr" and analyzer.language_of(english) == "en"
    assert analyzer.analyze(french) == analyzer.analyze(french, "fr")
    assert analyzer.analyze(english) == analyzer.analyze(english, "en")
    assert analyzer.analyze(english, "fr") != analyzer.analyze(english, "en")  # the explicit language wins
    assert analyzer.analyze(french, "fr-FR") == analyzer.analyze(french, "FR") == analyzer.analyze(french, "fr")


def test_other_languages_are_neither_stemmed_nor_stripped_of_their_own_words(analyzer: Analyzer) -> None:
    spanish = "Las niñas comían manzanas en el jardín de la casa"
    assert analyzer.language_of(spanish) == "other"
    # no stemming; French and English stop words ("en", "de", "la") go; accents folded
    assert analyzer.analyze(spanish) == ["las", "ninas", "comian", "manzanas", "el", "jardin", "casa"]
    assert analyzer.analyze("the running of the bulls", "es") == ["running", "bulls"]


class _FixedDetector(LanguageDetector):
    def __init__(self, language: str) -> None:
        super().__init__()
        self.language = language
        self.calls = 0

    def detect(self, text: str) -> tuple[str, float]:
        self.calls += 1
        return self.language, 1.0


def test_the_detector_is_only_asked_when_no_language_is_given() -> None:
    detector = _FixedDetector("en")
    analyzer = Analyzer(detector=detector)
    assert analyzer.analyze("running dogs") == ["run", "dog"]
    assert analyzer.analyze("running dogs", "fr") == ["running", "dog"]
    assert analyzer.analyze("   ") == [] and analyzer.language_of("") == "other"
    assert detector.calls == 1
    assert analyzer.analyze_many(["running", "running"], ["fr", None]) == [["running"], ["run"]]
    assert detector.calls == 2


def test_resolve_language() -> None:
    assert resolve_language("fr") == resolve_language(" fr_CA ") == "fr"
    assert resolve_language("EN-us") == "en"
    assert resolve_language("es") == resolve_language("de-AT") == resolve_language("other") == "other"
    with pytest.raises(ValueError, match="language tag"):
        resolve_language("")
    with pytest.raises(ValueError, match="language tag"):
        resolve_language("français!")
    with pytest.raises(TypeError, match="language must be a str"):
        resolve_language(1)


def test_bad_input_is_refused_clearly(analyzer: Analyzer) -> None:
    encoder = SparseEncoder(analyzer)
    for call in (analyzer.analyze, analyzer.tokenize, encoder.encode_document, encoder.encode_query):
        with pytest.raises(TypeError, match="must be a str, not bytes"):
            call(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a str, not NoneType"):
        analyzer.analyze(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of str"):
        analyzer.analyze_many("one text")
    with pytest.raises(TypeError, match="must be a str, not int"):
        encoder.encode_documents(["fine", 3], "en")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="2 languages for 1 texts"):
        analyzer.analyze_many(["x"], ["en", "fr"])
    with pytest.raises(ValueError, match="at least one language"):
        encoder.encode_query("x", [])
    with pytest.raises(ValueError, match="min_token_length"):
        Analyzer(min_token_length=0)


def test_analysis_is_thread_safe() -> None:
    texts = [f"Les enfants mangeaient {i} pommes et the runners ran {i} miles" for i in range(300)]
    expected = Analyzer().analyze_many(texts, "fr")
    shared = Analyzer()
    results: list[list[list[str]]] = []

    def work() -> None:
        results.append(shared.analyze_many(texts, "fr"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


# -- sparse vectors -----------------------------------------------------------------------------


def test_indices_are_stable_across_processes() -> None:
    # BLAKE2b, not hash(): these values must never change (stored vectors depend on them)
    assert term_index("run") == 1518968264
    assert term_index("mang") == 845114551
    assert term_index("analys") == 2165870576
    assert term_index("ide") == 621353863
    assert all(0 <= term_index(t) < 2**32 for t in ("", "é", "x" * 1000))


def test_document_values_saturate_and_are_length_normalised(analyzer: Analyzer) -> None:
    encoder = SparseEncoder(analyzer, avgdl=4)
    vector = encoder.encode_document("the cat sat on the cat mat", "en")  # cat cat sat mat: dl = 4
    assert vector.length == 4 and len(vector) == 3
    assert vector.indices == sorted(vector.indices)
    values = vector.as_dict()
    assert values[term_index("cat")] == pytest.approx(2 * 2.2 / (2 + 1.2)) == pytest.approx(1.375)
    assert values[term_index("sat")] == pytest.approx(1.0)  # tf 1 at the mean length: exactly 1
    assert values[term_index("mat")] == pytest.approx(bm25_value(1, 4, 4))

    long = encoder.encode_document("cat mat dog rug fox owl bee ant", "en").as_dict()  # dl = 8 = 2 x avgdl
    assert long[term_index("cat")] == pytest.approx(2.2 / (1 + 1.2 * (0.25 + 0.75 * 2))) == pytest.approx(0.7096774)

    many = encoder.encode_document("cat " * 40, "en").as_dict()[term_index("cat")]
    assert many == pytest.approx(bm25_value(40, 40, 4)) and many < K1 + 1  # saturates below k1 + 1
    encoder.avgdl = 40
    assert encoder.encode_document("cat " * 40, "en").as_dict()[term_index("cat")] == pytest.approx(
        40 * 2.2 / (40 + 1.2)
    )


def test_bm25_parameters_are_used(analyzer: Analyzer) -> None:
    flat = SparseEncoder(analyzer, avgdl=1, b=0.0).encode_document("cat cat dog dog dog dog", "en").as_dict()
    assert flat[term_index("cat")] == pytest.approx(2 * 2.2 / 3.2)  # b = 0: no length normalisation
    binary = SparseEncoder(analyzer, k1=0.0).encode_document("cat cat cat", "en").as_dict()
    assert binary[term_index("cat")] == pytest.approx(1.0)  # k1 = 0: presence only
    for bad in ({"k1": -1.0}, {"b": 1.5}, {"avgdl": 0.0}, {"avgdl": math.nan}, {"avgdl": True}):
        with pytest.raises(ValueError):
            SparseEncoder(analyzer, **bad)


def test_query_vectors_hold_one_per_distinct_term(analyzer: Analyzer) -> None:
    encoder = SparseEncoder(analyzer)
    query = encoder.encode_query("Running runs and the runners run", "en")
    assert query.indices == sorted([term_index("run"), term_index("runner")])
    assert query.values == [1.0, 1.0] and query.length == 4
    both = encoder.encode_query("running", ["fr", "en"])  # the union when the language is uncertain
    assert both.indices == sorted([term_index("running"), term_index("run")])


def test_empty_text_gives_an_empty_vector(analyzer: Analyzer) -> None:
    encoder = SparseEncoder(analyzer)
    empty = SparseVector(indices=[], values=[], length=0)
    assert encoder.encode_document("", "en") == empty
    assert encoder.encode_query("  \n\t ") == empty
    assert encoder.encode_query("the of and", "en") == empty  # nothing but stop words
    assert encoder.encode_documents(["", "cat", "   "], "en") == [
        empty,
        SparseVector(indices=[term_index("cat")], values=[pytest.approx(bm25_value(1, 1, 100.0))], length=1),  # type: ignore[list-item]
        empty,
    ]
    assert encoder.encode_documents([]) == [] and encoder.encode_terms([[], []]) == [empty, empty]


def test_colliding_terms_are_merged(analyzer: Analyzer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = analysis.term_index
    monkeypatch.setattr(analysis, "term_index", lambda term: 7 if term in ("cat", "dog") else real(term))
    encoder = SparseEncoder(analyzer, avgdl=4)
    vector = encoder.encode_document("cat dog cat mat", "en")
    assert vector.indices.count(7) == 1
    assert vector.as_dict()[7] == pytest.approx(bm25_value(3, 4, 4))  # frequencies add up before saturation
    assert encoder.encode_query("cat dog", "en").indices == [7]


def test_avgdl_from_documents_and_corpus_stats(analyzer: Analyzer) -> None:
    encoder = SparseEncoder(analyzer)
    assert encoder.fit(["cat dog", "cat dog mouse bird", "", "the"], "en") == pytest.approx(3.0)
    assert encoder.avgdl == pytest.approx(3.0)
    assert encoder.fit(["", "the of"], "en") == pytest.approx(3.0)  # nothing to learn from: unchanged

    stats = CorpusStats()
    assert stats.avgdl is None
    vectors = encoder.encode_documents(["cat dog", "cat dog mouse bird"], "en")
    stats.add(*(v.length for v in vectors))
    assert stats.documents == 2 and stats.avgdl == pytest.approx(3.0)
    stats.remove(vectors[0].length)
    assert stats.avgdl == pytest.approx(4.0)
    stats.remove(4, 4)
    assert stats.documents == 0 and stats.avgdl is None


def test_signature_names_the_analysis(analyzer: Analyzer) -> None:
    assert SparseEncoder(analyzer).signature == "majordome-bm25/1;blake2b32;fold=1;len=1-64;k1=1.2;b=0.75"
    assert Analyzer(fold_accents=False).signature != analyzer.signature


def test_qdrant_scores_the_vectors_as_bm25(analyzer: Analyzer) -> None:
    models = pytest.importorskip("qdrant_client.models")
    from qdrant_client import QdrantClient

    documents = [
        "Le chat mange la souris dans la cuisine",
        "Les chats mangeaient des souris, des oiseaux et des poissons",
        "Le chien dort dans le jardin",
        "La souris dort",
    ]
    encoder = SparseEncoder(analyzer)
    encoder.fit(documents, "fr")
    vectors = encoder.encode_documents(documents, "fr")
    client = QdrantClient(":memory:")
    client.create_collection(
        "kb", vectors_config={}, sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)}
    )
    client.upsert("kb", [models.PointStruct(id=i, vector={"bm25": v.to_qdrant()}) for i, v in enumerate(vectors)])
    query = encoder.encode_query("chat qui mange une souris", "fr")
    hits = client.query_points("kb", query=query.to_qdrant(), using="bm25", limit=4).points

    def idf(n: int) -> float:
        return math.log(1 + (len(documents) - n + 0.5) / (n + 0.5))

    expected: dict[int, float] = {}
    for position, vector in enumerate(vectors):
        stored = vector.as_dict()
        for index in query.indices:
            if index in stored:
                n = sum(index in v.indices for v in vectors)
                expected[position] = expected.get(position, 0.0) + idf(n) * stored[index]
    assert [hit.id for hit in hits] == sorted(expected, key=lambda p: -expected[p])
    for hit in hits:
        assert hit.score == pytest.approx(expected[int(hit.id)], rel=1e-5)
    client.close()
