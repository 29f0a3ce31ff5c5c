from __future__ import annotations

import json

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
