"""The Azure Functions app itself: four Service Bus triggers and a results output, wired to the
handlers. Skipped where ``azure-functions`` is not installed (the handlers are tested without it)."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from majordome import Majordome, MajordomeConfig
from majordome.testing import Reply, ScriptedModel

func = pytest.importorskip("azure.functions")

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "azure_functions" / "function_app.py"
ANALYSIS = json.dumps({"engagement_score": 60, "sentiment": "neutral", "recommendations": ["Add a hook"]})


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("azure_functions_example_app", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _Out:
    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value

    def get(self) -> str | None:
        return self.value


def test_one_trigger_per_job_type_with_the_results_output() -> None:
    app = _load()
    functions = {f.get_function_name(): json.loads(f.get_function_json()) for f in app.app.get_functions()}
    assert sorted(functions) == ["chat_suggest_job", "content_analyze_job", "content_suggest_job", "video_analysis_job"]
    for name, spec in functions.items():
        bindings = {b["direction"]: b for b in spec["bindings"]}
        trigger, output = bindings["IN"], bindings["OUT"]
        assert trigger["type"] == "serviceBusTrigger" and trigger["connection"] == "SERVICEBUS_CONNECTION"
        assert trigger["queueName"] == f"%{name.removesuffix('_job').upper()}_QUEUE%"
        assert output["type"] == "serviceBus" and output["queueName"] == "%RESULTS_QUEUE%"


async def test_a_trigger_writes_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _load()
    mj = Majordome(MajordomeConfig(), providers={"*": ScriptedModel(Reply(ANALYSIS))}, env={})
    monkeypatch.setattr(app, "_majordome", mj)
    body = {
        "jobId": "job-9",
        "jobType": "content.analyze",
        "creatorId": "creator_42",
        "payload": {"content": "New set tonight"},
        "attempt": 1,
        "createdAt": datetime.now(UTC).isoformat(),
        "deadlineMs": 60_000,
    }
    out = _Out()
    try:
        await app.content_analyze_job.build().get_user_function()(func.ServiceBusMessage(body=json.dumps(body)), out)
    finally:
        await mj.aclose()
    assert out.value is not None
    result = json.loads(out.value)
    assert result["status"] == "succeeded" and result["output"]["engagement_score"] == 60
