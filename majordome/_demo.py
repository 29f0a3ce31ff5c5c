"""``make demo``: a tour of majordome on its embedded defaults — no keys, no servers to start.

Every answer below comes from the real local model (SmolLM2-135M-Instruct through llama.cpp),
which serves each catalogue slot because no endpoint is configured; the answers say so. The
resilience part talks HTTP to a stub server on loopback that fails on purpose.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from majordome._client import Majordome
from majordome._config import MajordomeConfig
from majordome._errors import MajordomeError
from majordome._types import Answer, Completed, TextDelta
from majordome.models.resilience import RetryPolicy
from majordome.router.router import explain


def _title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m")


def _show(answer: Answer) -> None:
    text = answer.text.strip().replace("\n", "\n   ")
    print(f"   {text}")
    print(
        f"   \033[2m→ slot {answer.model}, served by {answer.served_by}; "
        f"{answer.usage.input_tokens}+{answer.usage.output_tokens} tokens, ${answer.cost_usd:.6f}, "
        f"{answer.latency_ms:.0f} ms, {len(answer.attempts)} attempt(s)\n"
        f"     why: {answer.decision.reason}; fallbacks: {', '.join(answer.decision.chain[1:]) or 'none'}\033[0m"
    )


def _ask(mj: Majordome, label: str, **request: Any) -> None:
    print(f"\n-- {label}")
    request.setdefault("tenant", "creator_42")
    request.setdefault("max_output_tokens", 80)
    try:
        _show(mj.ask_sync(request))
    except MajordomeError as error:
        print(f"   \033[33m{type(error).__name__}\033[0m: {error}")


def _catalogue(mj: Majordome) -> None:
    _title("The catalogue, as served here")
    for row in mj.models():
        served = row.served_by or f"not served ({row.kind})"
        print(
            f"   {row.id:<20} ${row.price_input_per_mtok:.2f}/${row.price_output_per_mtok:.2f} per M tokens  "
            f"{served}{'  (substituted: no endpoint configured)' if row.substituted else ''}"
        )


def _resilience() -> None:
    from majordome.testing import StubLLMServer, StubReply

    _title("Resilience against a failing OpenAI-compatible endpoint (loopback stub)")
    with StubLLMServer() as server:
        env = {
            "MAJORDOME_MODEL__DEEPSEEK_V3__API": "openai",
            "MAJORDOME_MODEL__DEEPSEEK_V3__ENDPOINT": server.openai_base_url,
            "MAJORDOME_MODEL__DEEPSEEK_V3__AUTH": "none",
            "MAJORDOME_MODEL__MISTRAL_LARGE__API": "openai",
            "MAJORDOME_MODEL__MISTRAL_LARGE__ENDPOINT": server.openai_base_url,
            "MAJORDOME_MODEL__MISTRAL_LARGE__AUTH": "none",
            **{
                f"MAJORDOME_MODEL__{name}__ENABLED": "false"
                for name in ("DEEPSEEK_R1", "PHI_4_MULTIMODAL", "PHI_4_MINI", "LLAMA_3_3_70B", "AZURE_SPEECH_BATCH")
            },
        }
        config = MajordomeConfig(retry=RetryPolicy(backoff_base_s=0.05))
        with Majordome(config, env=env) as mj:
            server.enqueue(
                StubReply.http_error(429, "slow down", retry_after=0.2),
                StubReply.http_error(500, "boom"),
                StubReply.ok("Answered on the third attempt."),
            )
            print("\n-- 429 (Retry-After 0.2 s), then 500, then an answer")
            answer = mj.ask_sync({"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"})
            _show(answer)
            for attempt in answer.attempts:
                print(
                    f"     attempt {attempt.number} on {attempt.model}: {attempt.outcome} ({attempt.latency_ms:.0f} ms)"
                )

            server.enqueue(*[StubReply.http_error(503, "down")] * 3, StubReply.ok("The fallback model answered."))
            print("\n-- DeepSeek-V3 answers 503 three times: the chain falls back to Mistral-Large")
            answer = mj.ask_sync({"messages": [{"role": "user", "content": "Hello?"}], "tenant": "creator_42"})
            _show(answer)

            server.enqueue(
                StubReply.cut_stream("one two three four five", after_chunks=0), StubReply.ok("A full answer.")
            )
            print("\n-- a stream cut before its first token is retried transparently")
            for event in mj.stream_sync({"messages": [{"role": "user", "content": "Stream?"}], "tenant": "creator_42"}):
                if isinstance(event, Completed):
                    print(f"   {event.answer.text}  \033[2m({len(event.answer.attempts)} attempts)\033[0m")


def _grounded() -> None:
    """Ingest the sample knowledge base shipped in the package and answer from it, with citations."""
    from majordome.knowledge import KnowledgeBase

    _title("Grounded answers (the sample knowledge base shipped with majordome)")
    sample = Path(__file__).parent / "knowledge" / "sample"
    with tempfile.TemporaryDirectory() as folder, KnowledgeBase.open(Path(folder) / "kb") as kb:
        for name, tenant in (("closer_plays.jsonl", "creator_42"), ("playbook.md", "creator_42")):
            print("   " + kb.ingest(sample / name, tenant=tenant).summary())
        print("   " + kb.ingest(sample / "shared_rules.md", tenant="shared", kind="EDITING_RULESET").summary())
        print("\n-- kb.search('a fan wants a custom video', tenant='creator_42')")
        for hit in kb.search("a fan wants a custom video, how much?", tenant="creator_42", k=3):
            print(f"   [{hit.citation}] {hit.chunk.text[:90]}…".replace("\n", " / "))
        print("\n-- the same search for another creator finds only the shared rules")
        for hit in kb.search("a fan wants a custom video, how much?", tenant="creator_7", k=3):
            print(f"   [{hit.citation}] {hit.chunk.text[:90]}…".replace("\n", " / "))
        with Majordome.from_env(knowledge=kb, grounding_k=3) as mj:
            request = {
                "messages": [{"role": "user", "content": "A fan asks: do you make custom videos? What do I reply?"}],
                "tenant": "creator_42",
                "job_type": "chat.suggest",
                "max_output_tokens": 80,
            }
            try:
                answer = mj.ask_sync(request)
            except MajordomeError as error:
                print(f"   \033[33m{type(error).__name__}\033[0m: {error}")
                return
            print(f"\n-- grounded answer from {answer.served_by}:\n   {answer.text.strip()}")
            for citation in answer.citations:
                mark = "cited" if citation.cited else "quoted"
                source = Path(citation.source).name if citation.source else "-"
                print(f"   [{citation.marker}] {mark}: {citation.document_id}#{citation.index} ({source})")


def _feedback() -> None:
    """Record, take feedback by trace id, learn from it, and hold a tenant's daily budget."""
    from majordome._errors import BudgetExceeded
    from majordome.feedback import SQLiteEventStore
    from majordome.testing import StubLLMServer, StubReply

    _title("Feedback and budgets (SQLite store; two slots on a loopback stub, so calls cost money)")
    with StubLLMServer() as server, tempfile.TemporaryDirectory() as folder:
        env = {
            **{
                f"MAJORDOME_MODEL__{name}__{field}": value
                for name in ("DEEPSEEK_V3", "LLAMA_3_3_70B")
                for field, value in (("API", "openai"), ("ENDPOINT", server.openai_base_url), ("AUTH", "none"))
            },
            **{
                f"MAJORDOME_MODEL__{name}__ENABLED": "false"
                for name in ("DEEPSEEK_R1", "PHI_4_MULTIMODAL", "PHI_4_MINI", "MISTRAL_LARGE", "AZURE_SPEECH_BATCH")
            },
        }
        store = Path(folder) / "feedback.db"
        config = MajordomeConfig(feedback_store=str(store), budget_daily_usd=0.004, explore_share=0.0)
        with Majordome(config, env=env) as mj:
            request = {
                "messages": [{"role": "user", "content": "hey, loved the live! do you do custom videos?"}],
                "tenant": "creator_42",
                "job_type": "chat.suggest",
            }
            answers = []
            print("\n-- answers are recorded (decision, call, cost) off the request path; the daily cap is $0.004")
            try:
                for _ in range(10):
                    server.enqueue(StubReply.ok("Yes! Custom videos are $25, ready in 2 days.", usage=(600, 150)))
                    answer = mj.ask_sync(request)
                    answers.append(answer)
                    print(f"   {answer.model:<14} ${answer.cost_usd:.6f}  trace {answer.trace_id[:12]}…")
            except BudgetExceeded as error:
                print(f"   \033[33mBudgetExceeded\033[0m: {error}")
            first = answers[0]
            print("\n-- feedback by trace id: a 1-star rating, then the same rating again, then the text sent")
            for kind, value in (("rating", 1), ("rating", 1), ("edit", "Yes! Custom videos are $30, ready Friday.")):
                result = mj.feedback(first.trace_id, kind, value)
                print(f"   {kind:<7} reward {result.reward:.2f}  stored {result.stored}  learned {result.learned}")
            try:
                mj.feedback("no-such-trace", "thumbs", True)
            except MajordomeError as error:
                print(f"   \033[33m{type(error).__name__}\033[0m: {error}")
            loop = mj.feedback_loop
            if loop is not None and loop.learner is not None:
                seen = loop.learner.observations(first.model)
                print(f"   the learner has {seen:g} weighted rewards for {first.model}")
        with SQLiteEventStore(store) as opened:
            from datetime import UTC, datetime, timedelta

            now = datetime.now(UTC)
            print("\n-- majordome feedback stats (intent × model)")
            for row in opened.stats(now - timedelta(hours=1), now + timedelta(minutes=1)):
                reward = f"{row.mean_reward:.2f}" if row.mean_reward is not None else "-"
                print(
                    f"   {row.intent} × {row.model}: {row.calls} calls, mean reward {reward}, "
                    f"${row.total_cost_usd:.6f}, p50 {row.latency_p50_s * 1000:.0f} ms"
                )


def _served() -> None:
    """`majordome serve` in-process on a loopback port, driven by the openai client."""
    import openai

    from majordome.server import ApiKeys, BackgroundServer, create_app

    _title("Serving: the OpenAI-compatible API, driven by the openai client (loopback)")
    keys = ApiKeys()
    keys.add("creator_42", "sk-demo-creator-42")
    with BackgroundServer(create_app(Majordome.from_env(), keys)) as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-demo-creator-42", max_retries=0)
        messages: Any = [{"role": "user", "content": "A fan says: 'your live made my week!' Reply in one line."}]
        reply = client.chat.completions.create(model="majordome", max_tokens=40, messages=messages)
        meta = (reply.model_extra or {}).get("majordome", {})
        print(f"\n-- POST /v1/chat/completions (model 'majordome'): {reply.choices[0].message.content!r}")
        print(f"   model {reply.model}, trace {str(meta.get('trace_id'))[:12]}…, cost ${meta.get('cost_usd', 0):.6f}")
        print(f"   {meta.get('decision', {}).get('reason')}")
        print("\n-- the same, streamed: ", end="")
        stream = client.chat.completions.create(model="majordome", max_tokens=30, messages=messages, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()
        try:
            client.chat.completions.create(model="gpt-17", messages=messages)
        except openai.APIStatusError as error:
            print(f"\n-- an unknown model: HTTP {error.status_code}, {error.message}")
        wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-wrong", max_retries=0)
        try:
            wrong.models.list()
        except openai.APIStatusError as error:
            print(f"-- a wrong key: HTTP {error.status_code}")


def run() -> None:
    started = time.monotonic()
    print("Le Majordome — a tour on the embedded defaults (no keys, no servers).")
    with Majordome.from_env() as mj:
        _catalogue(mj)
        _title("Understanding and routing (no model called)")
        for text in (
            "Combien je gagne par mois si 300 fans paient 9,99 € et que j'en perds 5 % chaque mois ?",
            "hey gorgeous, loved your last live, when's the next one? 😍",
        ):
            print(f"\n-- {text}")
            decision = mj.route({"messages": [{"role": "user", "content": text}], "tenant": "creator_42"})
            print("   " + explain(decision).replace("\n", "\n   "))
        _title("Routing and answers (the local model answers for each slot)")
        _ask(
            mj,
            "chat.suggest: a fan's message (creative → Llama-3.3-70B)",
            job_type="chat.suggest",
            messages=[
                {"role": "system", "content": "You are a friendly creator. Reply warmly in one short sentence."},
                {"role": "user", "content": "Loved your last video, you made my day!"},
            ],
        )
        _ask(
            mj,
            "a French request (→ Mistral-Large)",
            language="fr",
            messages=[{"role": "user", "content": "Donne-moi une idée de post pour Instagram."}],
        )
        _ask(
            mj,
            "a reasoning request (→ DeepSeek-R1)",
            intent="reasoning",
            messages=[{"role": "user", "content": "What is 12 times 7? Answer with the number."}],
        )
        _ask(
            mj,
            "pinned to Phi-4-mini",
            model="Phi-4-mini",
            messages=[{"role": "user", "content": "Name three colours."}],
        )

        _title("Streaming")
        print("   ", end="")
        request = {
            "messages": [{"role": "user", "content": "Write one upbeat sentence about Monday mornings."}],
            "tenant": "creator_42",
            "max_output_tokens": 60,
        }
        for event in mj.stream_sync(request):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, Completed):
                print(
                    f"\n   \033[2m→ {event.answer.usage.output_tokens} tokens streamed "
                    f"from {event.answer.served_by}\033[0m"
                )

        _title("Bad input is refused with a typed error, before any call")
        image = {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}}
        _ask(
            mj,
            "an image, but the local model reads text only",
            messages=[{"role": "user", "content": [{"type": "text", "text": "What is in this photo?"}, image]}],
        )
        _ask(mj, "an unknown model", model="gpt-17", messages=[{"role": "user", "content": "hi"}])
        _ask(mj, "no messages", messages=[])
    _grounded()
    _resilience()
    _feedback()
    _served()
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
