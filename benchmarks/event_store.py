"""Feedback event store: sustained events/s through the EventWriter, and what submit() costs.

Each simulated request records a decision (six scored candidates, a 200-character prompt) and
a call; three in ten get a feedback event. The events are built before the clock starts (their
construction is the caller's cost, measured apart), then submitted from the main thread as fast
as the writer takes them (the producer pauses when the queue is half full, so nothing spills),
and flushed; events/s = events / (first submit .. flush returned). Every submit() is timed
during that run. A second run submits at a steady 2,000 events/s while the writer works, the
request path's situation, and reports submit()'s latency there.

    python benchmarks/event_store.py                          # SQLite, and PostgreSQL when known
    python benchmarks/event_store.py --postgres postgresql://postgres@127.0.0.1:5432/db
    python benchmarks/event_store.py --quick                  # a smoke run

PostgreSQL comes from ``--postgres`` or ``$MAJORDOME_TEST_POSTGRES_DSN``; its tables go to a
schema of their own, dropped at the end. Targets (issue 6): >= 5,000 events/s into each store;
submit() p50 and p99 <= 0.2 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import command_line, machine, percentile, print_table, write_json

from majordome.feedback.events import CallEvent, DecisionEvent, Event, FeedbackEvent
from majordome.feedback.sqlite import SQLiteEventStore
from majordome.feedback.store import EventStore
from majordome.feedback.writer import EventWriter

MODELS = ("DeepSeek-V3", "DeepSeek-R1", "Mistral-Large", "Llama-3.3-70B", "Phi-4-mini", "Phi-4-multimodal")
INTENTS = ("fan_reply", "sales_message", "content_ideas", "caption_writing", "reasoning", "translation")


def requests_events(n_events: int, seed: int = 0) -> list[Event]:
    """About ``n_events`` events, request by request."""
    rng = random.Random(seed)
    events: list[Event] = []
    while len(events) < n_events:
        trace = uuid.uuid4().hex
        intent = rng.choice(INTENTS)
        candidates = tuple(
            {"model": m, "quality": rng.random(), "cost_usd": rng.random() / 1000, "latency_s": rng.random() * 5,
             "utility": rng.random(), "output_tokens": 200}
            for m in MODELS
        )  # fmt: skip
        chosen = max(candidates, key=lambda c: c["utility"])["model"]
        events.append(
            DecisionEvent(
                trace_id=trace,
                tenant=f"creator_{rng.randrange(500)}",
                chosen=chosen,
                chain=(chosen, "DeepSeek-V3"),
                policy="priors/3",
                job_type="chat.suggest",
                intent=intent,
                language="fr",
                candidates=candidates,
                features={"intent_confidence": rng.random(), "prompt_tokens": rng.randrange(20, 400)},
                prompt="".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(200)),
            )
        )
        events.append(
            CallEvent(
                trace_id=trace,
                tenant=f"creator_{rng.randrange(500)}",
                model=chosen,
                job_type="chat.suggest",
                intent=intent,
                deployment=f"{chosen.lower()}-eu",
                input_tokens=rng.randrange(20, 400),
                output_tokens=rng.randrange(10, 300),
                cost_usd=rng.random() / 1000,
                latency_s=rng.random() * 5,
                served_by=f"{chosen.lower()}-eu",
            )
        )
        if rng.random() < 0.3:
            events.append(FeedbackEvent(trace_id=trace, kind="rating", value=rng.randrange(1, 6), reward=rng.random()))
    return events[:n_events]


def sustained(store: EventStore, events: list[Event], spill: Path) -> dict[str, Any]:
    """Submit as fast as the writer takes them; events/s and every submit()'s duration."""
    writer = EventWriter(store, spill)
    half = writer.queue_size // 2
    durations: list[float] = []
    clock = time.perf_counter
    started = clock()
    for i, event in enumerate(events):
        if i % 500 == 0:
            while writer.metrics.queued > half:
                time.sleep(0.001)
        before = clock()
        writer.submit(event)
        durations.append(clock() - before)
    writer.flush_sync()
    elapsed = clock() - started
    metrics = writer.metrics
    writer.close_sync()
    durations.sort()
    return {
        "events": len(events),
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
        "written": metrics.written,
        "spilled": metrics.spilled,
        "submit_us": _us(durations),
    }


def steady(store: EventStore, events: list[Event], spill: Path, rate: float) -> dict[str, Any]:
    """Submit at ``rate`` events/s while the writer works; submit()'s duration."""
    writer = EventWriter(store, spill)
    durations: list[float] = []
    clock = time.perf_counter
    interval = 1 / rate
    next_at = clock()
    for event in events:
        wait = next_at - clock()
        if wait > 0:
            time.sleep(wait)  # idle between requests, as a server waiting on the network (no spinning)
        next_at += interval
        before = clock()
        writer.submit(event)
        durations.append(clock() - before)
    writer.flush_sync()
    metrics = writer.metrics
    writer.close_sync()
    durations.sort()
    return {"events": len(events), "rate": rate, "written": metrics.written, "submit_us": _us(durations)}


def construction_us(n: int) -> dict[str, float]:
    """What building the events costs the caller (not part of submit())."""
    clock = time.perf_counter
    out = {}
    for name, build in (
        ("CallEvent", lambda: CallEvent(trace_id="t", tenant="c", model="m", cost_usd=0.001, latency_s=1.0)),
        ("FeedbackEvent", lambda: FeedbackEvent(trace_id="t", kind="rating", value=4, reward=0.75)),
    ):
        started = clock()
        for _ in range(n):
            build()
        out[name] = (clock() - started) / n * 1e6
    return out


def _us(ordered: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(ordered, 50) * 1e6,
        "p99": percentile(ordered, 99) * 1e6,
        "p99_9": percentile(ordered, 99.9) * 1e6,
        "max": ordered[-1] * 1e6,
    }


def run_backend(name: str, open_store: Callable[[], EventStore], n: int, tmp: Path) -> dict[str, Any]:
    events = requests_events(n, seed=1)
    steady_events = requests_events(min(n, 10_000), seed=2)
    store = open_store()
    try:
        result = {"sustained": sustained(store, events, tmp / f"{name}-spill.jsonl")}
        result["steady"] = steady(store, steady_events, tmp / f"{name}-spill-2.jsonl", rate=2000)
    finally:
        store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("MAJORDOME_TEST_POSTGRES_DSN"))
    args = parser.parse_args()
    n = 5_000 if args.quick else args.events
    report: dict[str, Any] = {"command": command_line(), "machine": machine()}
    report["construction_us"] = construction_us(20_000)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        report["sqlite"] = run_backend("sqlite", lambda: SQLiteEventStore(tmp / "events.db"), n, tmp)
        if args.postgres:
            import psycopg

            from majordome.feedback.postgres import PostgresEventStore

            schema = f"majordome_bench_{uuid.uuid4().hex[:8]}"
            try:
                report["postgres"] = run_backend(
                    "postgres", lambda: PostgresEventStore(args.postgres, schema=schema), n, tmp
                )
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            print("PostgreSQL skipped: pass --postgres DSN or set MAJORDOME_TEST_POSTGRES_DSN")
    rows = []
    for backend in ("sqlite", "postgres"):
        if backend not in report:
            continue
        s, st = report[backend]["sustained"], report[backend]["steady"]
        rows.append(
            [backend, f"{s['events_per_s']:,.0f}", s["spilled"], f"{s['submit_us']['p50']:.2f}",
             f"{s['submit_us']['p99']:.2f}", f"{st['submit_us']['p50']:.2f}", f"{st['submit_us']['p99']:.2f}",
             f"{st['submit_us']['max']:.0f}"]
        )  # fmt: skip
    print_table(
        f"event store through the EventWriter ({n:,} events; submit() in µs)",
        ["store", "events/s", "spilled", "submit p50 (full speed)", "p99", "submit p50 (2,000/s)", "p99", "max"],
        rows,
    )
    built = report["construction_us"]
    print(f"building an event (caller's side): CallEvent {built['CallEvent']:.1f} µs, "
          f"FeedbackEvent {built['FeedbackEvent']:.1f} µs")  # fmt: skip
    write_json("event_store-quick" if args.quick else "event_store", report)


if __name__ == "__main__":
    main()
