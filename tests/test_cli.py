from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from majordome.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("MAJORDOME_", "AZURE_")):
            monkeypatch.delenv(name)


def test_models_lists_prices_and_what_serves_each_slot() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "deepseek-r1" in result.output and "1.35" in result.output and "5.40" in result.output
    assert "SmolLM2" in result.output and "no endpoint configured" in result.output
    assert "not a chat model (transcription)" in result.output


def test_models_json() -> None:
    result = runner.invoke(app, ["models", "--json"])
    rows = {row["id"]: row for row in json.loads(result.output)}
    assert rows["mistral-large"]["price_output_per_mtok"] == 6.0
    assert rows["mistral-large"]["substituted"] is True


def test_unknown_model_exits_2_and_lists_the_known_ones() -> None:
    result = runner.invoke(app, ["ask", "hi", "--model", "gpt-17"])
    assert result.exit_code == 2
    assert "unknown model 'gpt-17'" in result.output and "deepseek-v3" in result.output


def test_configuration_error_exits_3() -> None:
    result = runner.invoke(app, ["models"], env={"MAJORDOME_OFFLINE": "sometimes"})
    assert result.exit_code == 3
    assert "offline" in result.output


@pytest.mark.local_model
def test_ask_json_gets_a_real_answer_from_the_local_model() -> None:
    result = runner.invoke(
        app, ["ask", "Say hello to a fan.", "--json", "--job-type", "chat.suggest", "--max-tokens", "24"]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["text"].strip()
    assert answer["model"] == "llama-3.3-70b"
    assert answer["substituted"] is True and "SmolLM2" in answer["served_by"]
    assert answer["usage"]["output_tokens"] > 0 and answer["cost_usd"] == 0.0


def test_route_json_gives_intent_language_and_confidence() -> None:
    result = runner.invoke(app, ["route", "Traduis ma bio en anglais stp", "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["intent"] == "translation" and decision["language"] == "fr"
    assert 0 < decision["intent_confidence"] <= 1 and decision["candidates"]


def test_route_explain_prints_the_scored_candidates() -> None:
    result = runner.invoke(app, ["route", "solve 3x + 4 = 19 step by step", "--explain"])
    assert result.exit_code == 0, result.output
    assert "utility" in result.output and "deepseek-r1" in result.output and "chain:" in result.output


def test_router_train_saves_a_model_that_loads(tmp_path: Path) -> None:
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        "prompt_id,prompt,model,score\n"
        + "".join(
            f"p{i},question number {i},deepseek-v3,{i % 2}\np{i},question number {i},phi-4-mini,1\n" for i in range(20)
        )
    )
    out = tmp_path / "q.npz"
    result = runner.invoke(app, ["router", "train", str(outcomes), "--kind", "linear", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "20 prompts x 2 models" in result.output
    env = {"MAJORDOME_QUALITY_MODEL": str(out)}
    routed = runner.invoke(app, ["route", "question number 3", "--json"], env=env)
    assert json.loads(routed.output)["quality_model"] == "linear"


def test_router_evaluate_intents(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text(
        '{"text": "translate my bio into German", "intent": "translation", "language": "en"}\n'
        '{"text": "tag these DMs as spam or not", "intent": "extraction", "language": "en"}\n'
    )
    result = runner.invoke(app, ["router", "evaluate-intents", str(path)])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output


def _outcomes_file(path: Path) -> Path:
    """120 prompts, two models: 'big' always right and dear, 'small' right on chat, wrong on maths."""
    rows = []
    for i in range(120):
        maths = i % 2 == 0
        prompt = f"Compute {i} times {i + 7} and explain each step" if maths else f"Say thanks to fan number {i}"
        rows.append({"prompt_id": f"p{i}", "prompt": prompt, "model": "big", "score": 1, "cost_usd": 0.01})
        small = 0 if maths else 1
        rows.append({"prompt_id": f"p{i}", "prompt": prompt, "model": "small", "score": small, "cost_usd": 0.001})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    return path


def test_bench_prints_the_table_and_writes_report_and_plots(tmp_path: Path) -> None:
    data = _outcomes_file(tmp_path / "outcomes.jsonl")
    out = tmp_path / "reports"
    result = runner.invoke(
        app,
        ["bench", "--dataset", str(data), "--routers", "prior-table,linear", "--bootstrap", "20", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "| router | AIQ" in result.output and "APGR" in result.output
    folder = next(out.iterdir())
    assert {p.name for p in folder.iterdir()} >= {"report.md", "report.json", "quality_cost.png", "regret.png"}
    report = json.loads((folder / "report.json").read_text())
    assert report["routers"]["linear"]["apgr"] > 0.7  # maths vs chat is easy to tell apart
    assert report["routers"]["random"]["apgr"] == pytest.approx(0.5)


def test_bench_without_a_dataset_exits_2() -> None:
    result = runner.invoke(app, ["bench"])
    assert result.exit_code == 2 and "--dataset" in result.output


def test_bench_on_a_malformed_file_exits_3_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": "a", "prompt": "x", "model": "m", "score": 0.5}\nnot json\n', "utf-8")
    result = runner.invoke(app, ["bench", "--dataset", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 3 and "line 2" in result.output


def test_kb_ingest_search_explain_and_delete(tmp_path: Path) -> None:
    fixtures = Path(__file__).parent / "knowledge" / "fixtures" / "kb"
    store = ["--path", str(tmp_path / "kb")]
    ingested = runner.invoke(app, ["kb", "ingest", str(fixtures), "--tenant", "creator_42", *store])
    assert ingested.exit_code == 0, ingested.output
    assert "documents" in ingested.output and "skipped" in ingested.output  # the fixtures hold bad records
    found = runner.invoke(app, ["kb", "search", "pricing bundles", "--tenant", "creator_42", "--explain", *store])
    assert found.exit_code == 0 and "score" in found.output and "tenant creator_42" in found.output
    other = runner.invoke(app, ["kb", "search", "pricing bundles", "--tenant", "creator_7", "--json", *store])
    assert other.exit_code == 0 and json.loads(other.stdout) == []
    deleted = runner.invoke(app, ["kb", "delete", "--tenant", "creator_42", "--yes", *store])
    assert deleted.exit_code == 0 and "deleted" in deleted.output


def test_kb_search_without_a_tenant_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["kb", "search", "hello", "--tenant", " ", "--path", str(tmp_path / "kb")])
    assert result.exit_code != 0 and "tenant" in result.output


def test_feedback_stats_and_export(tmp_path: Path) -> None:
    from majordome.bench.readers import read_long_outcomes
    from majordome.feedback.events import CallEvent, DecisionEvent, FeedbackEvent
    from majordome.feedback.sqlite import SQLiteEventStore

    db = tmp_path / "feedback.db"
    with SQLiteEventStore(db) as store:
        events: list[object] = []
        for i, (model, rating) in enumerate([("phi-4-mini", 2), ("llama-3.3-70b", 5), ("llama-3.3-70b", 4)]):
            trace = f"t{i}"
            events += [
                DecisionEvent(
                    trace_id=trace,
                    tenant="c1",
                    chosen=model,
                    chain=(model,),
                    policy="p1",
                    intent="fan_reply",
                    prompt=f"hello {i}",
                ),
                CallEvent(trace_id=trace, tenant="c1", model=model, intent="fan_reply", cost_usd=0.001, latency_s=1.0),
                FeedbackEvent(trace_id=trace, kind="rating", value=rating, reward=(rating - 1) / 4),
            ]
        store.write(events)  # type: ignore[arg-type]
    stats = runner.invoke(app, ["feedback", "stats", "--store", str(db), "--json"])
    assert stats.exit_code == 0, stats.output
    rows = {r["model"]: r for r in json.loads(stats.stdout)}
    assert rows["llama-3.3-70b"]["calls"] == 2 and rows["llama-3.3-70b"]["mean_reward"] == pytest.approx(0.875)
    table = runner.invoke(app, ["feedback", "stats", "--store", str(db), "--since", "1h"])
    assert table.exit_code == 0 and "fan_reply" in table.output
    out = tmp_path / "outcomes.csv"
    exported = runner.invoke(app, ["feedback", "export", str(out), "--store", str(db)])
    assert exported.exit_code == 0 and "3 outcomes" in exported.output
    dataset = read_long_outcomes(out)
    assert dataset.size == 3 and sorted(dataset.models) == ["llama-3.3-70b", "phi-4-mini"]
    bad = runner.invoke(app, ["feedback", "stats", "--store", str(db), "--since", "yesterday-ish"])
    assert bad.exit_code == 2 and "--since" in bad.output
    missing = runner.invoke(app, ["feedback", "stats"])
    assert missing.exit_code == 3 and "MAJORDOME_FEEDBACK_STORE" in missing.output


def test_feedback_learner_lists_versions_and_rolls_back(tmp_path: Path) -> None:
    from majordome.feedback.learner import BanditQuality
    from majordome.feedback.sqlite import SQLiteEventStore
    from majordome.router import Policy
    from majordome.router.quality import PriorQuality

    db = tmp_path / "feedback.db"
    learner = BanditQuality(PriorQuality(Policy.default(), ["phi-4-mini"]), ["phi-4-mini"])
    with SQLiteEventStore(db) as store:
        assert store.save_learner_state(1, learner.to_json(), "sync")
        assert store.save_learner_state(2, learner.to_json(), "sync")
    listed = runner.invoke(app, ["feedback", "learner", "--store", str(db)])
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == 2
    rolled = runner.invoke(app, ["feedback", "learner", "--rollback", "1", "--store", str(db)])
    assert rolled.exit_code == 0 and "saved as version 3" in rolled.output and "rollback to version 1" in rolled.output
    missing = runner.invoke(app, ["feedback", "learner", "--rollback", "9", "--store", str(db)])
    assert missing.exit_code == 3 and "no learner state version 9" in missing.output
