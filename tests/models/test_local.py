"""End to end with the real local model (SmolLM2-135M-Instruct through llama.cpp)."""

from __future__ import annotations

import asyncio

import pytest

from majordome import Completed, ConfigurationError, Majordome, MajordomeConfig, TextDelta
from majordome.models.local import LocalEngine, find_default_gguf

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def mj() -> Majordome:
    return Majordome(MajordomeConfig(offline="always", local_n_ctx=2048), env={})


def ask(text: str, **kwargs: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], "tenant": "creator_42", "max_output_tokens": 32, **kwargs}


def test_the_gguf_ships_in_the_wheel() -> None:
    path = find_default_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


async def test_a_real_answer_says_which_slot_and_which_model(mj: Majordome) -> None:
    answer = await mj.ask(ask("What colour is the sky on a clear day?", intent="reasoning"))
    assert answer.text.strip()
    assert answer.model == "deepseek-r1"  # the slot the router chose
    assert answer.substituted and answer.served_by == "local llama.cpp: SmolLM2-135M-Instruct (Q4_1)"
    assert answer.usage.input_tokens > 10 and answer.usage.output_tokens > 0
    assert not answer.usage.estimated
    assert answer.cost_usd == 0.0


async def test_streaming_from_the_local_model(mj: Majordome) -> None:
    events = [e async for e in mj.stream(ask("Count from one to five."))]
    final = events[-1]
    assert isinstance(final, Completed)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == final.answer.text
    assert final.answer.usage.output_tokens == len(deltas)


async def test_json_mode_gives_json(mj: Majordome) -> None:
    import json

    answer = await mj.ask(
        ask("Give a JSON object with a key 'colour' for the sky.", json_mode=True, max_output_tokens=40)
    )
    assert isinstance(json.loads(answer.text), dict)


async def test_a_timeout_stops_generation_and_frees_the_model(mj: Majordome) -> None:
    from majordome import DeadlineExceeded

    with pytest.raises(DeadlineExceeded):
        await mj.ask(ask("Write a very long story about a dragon.", max_output_tokens=1000, deadline_s=0.3))
    # the engine is free again at once: the next call is not stuck behind the cancelled one
    answer = await asyncio.wait_for(mj.ask(ask("Say yes.", max_output_tokens=4)), 10)
    assert answer.text


def test_a_missing_gguf_is_a_configuration_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="no such file"):
        LocalEngine(tmp_path / "missing.gguf")


async def test_a_reader_that_stops_early_frees_the_model(mj: Majordome) -> None:
    stream = mj.stream(ask("Write a very long story about a dragon.", max_output_tokens=1000))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    answer = await asyncio.wait_for(mj.ask(ask("Say yes.", max_output_tokens=4)), 5)
    assert answer.text
