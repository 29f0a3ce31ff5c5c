from __future__ import annotations

import math
from pathlib import Path

import pytest

from majordome._errors import ConfigurationError
from majordome.knowledge.evaluate import evaluate_beir, ndcg_at, read_qrels, recall_at
from majordome.testing import HashingEmbedder

BEIR = Path(__file__).parent / "fixtures" / "beir"


def test_metrics_against_hand_computed_values() -> None:
    assert ndcg_at(["a", "b"], {"b": 1}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(["b", "a"], {"b": 1}) == 1.0
    assert ndcg_at(["x"] * 10 + ["b"], {"b": 1}) == 0.0  # past the cut-off
    assert recall_at(["a", "b", "c"], {"b": 1, "z": 1}) == 0.5
    assert ndcg_at([], {}) == 0.0


def test_evaluation_runs_the_real_ingest_and_search_path(tmp_path: Path) -> None:
    results, ingest = evaluate_beir(BEIR, embedder=HashingEmbedder(dim=512), store_path=tmp_path)
    assert ingest["documents"] == 3 and ingest["chunks"] >= 3
    assert {r.mode for r in results} == {"dense", "sparse", "hybrid"}
    for r in results:
        assert r.queries == 1 and r.ndcg10 == 1.0 and r.recall10 == 1.0, r.mode  # d1 is the obvious answer


def test_malformed_qrels_are_refused_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "test.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\nq1\td1\tmany\n", "utf-8")
    with pytest.raises(ConfigurationError, match="line 2"):
        read_qrels(bad)
    bad.write_text("a\tb\n", "utf-8")
    with pytest.raises(ConfigurationError, match="header"):
        read_qrels(bad)
