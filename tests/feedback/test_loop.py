"""The feedback loop inside a Majordome: records, feedback by trace id, learning, budgets."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from majordome import BadRequestError, BudgetExceeded, Majordome, MajordomeConfig
from majordome.feedback.budgets import BudgetCaps, InProcessBudgets
from majordome.feedback.loop import FeedbackLoop, UnknownTrace, budget_pressure
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.models.messages import Usage
from majordome.testing import Reply, ScriptedModel


def _majordome(tmp_path: Path, **config: object) -> tuple[Majordome, FeedbackLoop]:
    loop = FeedbackLoop(
        SQLiteEventStore(tmp_path / "feedback.db"), spill_path=tmp_path / "spill.jsonl", explore_share=0.0, seed=0
    )
    usage = Usage(input_tokens=1000, output_tokens=1000)
    providers = {"*": ScriptedModel(default=Reply("Sure, 25 dollars for the custom video.", usage=usage))}
    mj = Majordome(MajordomeConfig(**config), providers=providers, env={}, feedback=loop)  # type: ignore[arg-type]
    return mj, loop


def fan(text: str = "hey, do you do custom videos?") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "tenant": "creator_1", "intent": "fan_reply"}


async def test_answers_are_recorded_and_feedback_is_stored_once(tmp_path: Path) -> None:
    mj, loop = _majordome(tmp_path)
    answer = await mj.ask(fan())
    first = await mj.afeedback(answer.trace_id, "rating", 5)
    assert first.stored and first.learned and first.reward == 1.0
    again = await mj.afeedback(answer.trace_id, "rating", 5)
    assert not again.stored and not again.learned
    edit = await mj.afeedback(answer.trace_id, "edit", "Sure, 30 dollars for the custom video.")
    assert 0.8 < edit.reward < 1.0  # one word of nine changed
    with pytest.raises(UnknownTrace):
        await mj.afeedback("no-such-trace", "rating", 3)
    with pytest.raises(BadRequestError):
        await mj.afeedback(answer.trace_id, "rating", 7)
    await mj.aclose()
    mj.close()
    loop.close()
    with SQLiteEventStore(tmp_path / "feedback.db") as store:
        decision = store.decision(answer.trace_id)
        assert decision is not None and decision.chosen == answer.model and decision.tenant == "creator_1"
        assert decision.prompt == "hey, do you do custom videos?" and len(decision.features["context"]) == 32
        [call] = store.calls(answer.trace_id)
        assert call.status == "ok" and call.cost_usd == pytest.approx(answer.cost_usd)
        assert sorted(f.kind for f in store.feedback(answer.trace_id)) == ["edit", "rating"]


async def test_feedback_after_a_restart_finds_the_decision_in_the_store(tmp_path: Path) -> None:
    mj, loop = _majordome(tmp_path)
    answer = await mj.ask(fan())
    mj.close()
    loop.close()
    mj2, loop2 = _majordome(tmp_path)
    result = await mj2.afeedback(answer.trace_id, "thumbs", False)
    assert result.stored and result.learned and result.reward == 0.0
    mj2.close()
    loop2.close()


async def test_a_model_that_keeps_failing_for_an_intent_loses_its_share(tmp_path: Path) -> None:
    mj, loop = _majordome(tmp_path)
    texts = [f"hey babe, message {i}" for i in range(30)]
    before = Counter([(await mj.ask(fan(t))).model for t in texts])
    favourite = before.most_common(1)[0][0]
    loop.explore_share = 0.3
    for step in range(150):
        answer = await mj.ask(fan(texts[step % len(texts)]))
        await mj.afeedback(answer.trace_id, "rating", 1 if answer.model == favourite else 5)
    loop.explore_share = 0.0
    after = Counter([(await mj.ask(fan(t))).model for t in texts])
    assert before[favourite] == len(texts) and after[favourite] == 0
    mj.close()
    loop.close()


async def test_budgets_hold_and_a_spent_tenant_is_refused_or_served_free(tmp_path: Path) -> None:
    ledger = InProcessBudgets(default=BudgetCaps(daily_usd=0.01))
    loop = FeedbackLoop(SQLiteEventStore(tmp_path / "f.db"), spill_path=tmp_path / "spill.jsonl", seed=0)
    usage = Usage(input_tokens=1000, output_tokens=1000)
    providers = {"*": ScriptedModel(default=Reply("ok", usage=usage))}
    mj = Majordome(MajordomeConfig(), providers=providers, env={}, feedback=loop, budgets=ledger)
    costs: list[float] = []
    with pytest.raises(BudgetExceeded):
        for _ in range(100):
            costs.append((await mj.ask(fan())).cost_usd)
    status = await ledger.status("creator_1")
    # reservations are estimates: the actual cost may pass the cap by at most one request's cost
    assert len(costs) > 1 and sum(costs) <= 0.01 + max(costs)
    assert status.daily_spent == pytest.approx(sum(costs)) and status.remaining_usd is not None
    mj.close()
    free = Majordome(
        MajordomeConfig(budget_free_model="phi-4-mini"), providers=providers, env={}, feedback=loop, budgets=ledger
    )
    answer = await free.ask(fan())
    assert answer.model == "phi-4-mini"
    free.close()
    loop.close()


def test_budget_pressure_grows_as_the_budget_runs_low() -> None:
    class Status:
        def __init__(self, share: float | None) -> None:
            self.remaining_share = share

    assert budget_pressure(None) == 1.0
    assert budget_pressure(Status(0.8)) == 1.0  # type: ignore[arg-type]
    assert budget_pressure(Status(0.25)) == 2.0  # type: ignore[arg-type]
    assert budget_pressure(Status(0.0)) == 10.0  # type: ignore[arg-type]


def test_feedback_on_a_substituted_answer_is_stored_but_not_learnt(tmp_path: Path) -> None:
    from majordome.feedback.events import CallEvent, DecisionEvent

    mj, loop = _majordome(tmp_path)
    assert loop.learner is not None
    loop.remember("t1", "creator_1", "deepseek-v3", [0.0] * 32, 0.7)
    decision = DecisionEvent(
        trace_id="t1", tenant="creator_1", chosen="deepseek-v3", chain=("deepseek-v3",), policy="p"
    )
    call = CallEvent(trace_id="t1", tenant="creator_1", model="deepseek-v3", substituted=True)
    loop.record(decision, call, "hi")
    result = loop.record_feedback("t1", "thumbs", False)
    assert result.stored and not result.learned
    assert loop.learner.observations("deepseek-v3") == 0
    mj.close()
    loop.close()


async def test_workers_share_what_they_learn_through_the_store(tmp_path: Path) -> None:
    usage = Usage(input_tokens=100, output_tokens=100)

    def worker(name: str) -> tuple[Majordome, FeedbackLoop]:
        loop = FeedbackLoop(
            SQLiteEventStore(tmp_path / "shared.db"), spill_path=tmp_path / f"{name}.spill", explore_share=0.0
        )
        loop.sync_every_s = 0.0
        providers = {"*": ScriptedModel(default=Reply("ok", usage=usage))}
        return Majordome(MajordomeConfig(), providers=providers, env={}, feedback=loop), loop

    (a, loop_a), (b, loop_b) = worker("a"), worker("b")
    answer = await a.ask(fan())
    for i in range(5):
        await a.afeedback(answer.trace_id, "rating", 1, idempotency_key=f"k{i}")
    loop_a.maybe_sync(force=True)
    assert loop_a.learner is not None and loop_b.learner is not None
    assert loop_b.learner.observations(answer.model) == 0
    await b.ask(fan("another fan"))  # a request starts the sync off the request path
    for _ in range(100):
        if b._sync_task is None and loop_b.learner.observations(answer.model) > 0:
            break
        await asyncio.sleep(0.02)
    assert loop_b.learner.observations(answer.model) == loop_a.learner.observations(answer.model) > 0
    for mj, loop in ((a, loop_a), (b, loop_b)):
        mj.close()
        loop.close()


async def test_stored_prompts_and_answers_have_contact_details_redacted(tmp_path: Path) -> None:
    mj, loop = _majordome(tmp_path)
    answer = await mj.ask(fan("my number is 06 12 34 56 78, text me at fan@example.com"))
    mj.close()
    loop.close()
    with SQLiteEventStore(tmp_path / "feedback.db") as store:
        decision = store.decision(answer.trace_id)
        assert decision is not None and decision.prompt is not None
        assert "fan@example.com" not in decision.prompt and "[email]" in decision.prompt
        assert "12 34 56 78" not in decision.prompt and "[phone]" in decision.prompt
