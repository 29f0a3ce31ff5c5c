"""What recording and budgets add to each request: ask() with and without the feedback loop.

Four Majordomes answer from a zero-latency ScriptedModel (so the time is majordome's own work):
plain; recording only (the learner off: a decision and a call event built and submitted); with
the whole feedback loop (SQLite store, the online learner on, 25 % exploration: the
learner's context and base quality computed, a decision and a call event submitted); and with
the loop plus in-process budgets (status, reserve, settle). Requests alternate between them in
rounds, so machine noise hits all four alike; the figures are per request, and the difference
of medians is the overhead.

    python benchmarks/feedback_overhead.py           # 5,000 requests each
    python benchmarks/feedback_overhead.py --quick

Target (issue 6): the request-path overhead of recording <= 0.2 ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import command_line, machine, print_table, summary_ms, write_json

from majordome import Majordome, MajordomeConfig
from majordome.feedback import BudgetCaps, FeedbackLoop, InProcessBudgets, SQLiteEventStore
from majordome.models.messages import Usage
from majordome.testing import Reply, ScriptedModel


def request(i: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": f"Loved your last video, you made my day! ({i % 50})"}],
        "tenant": f"creator_{i % 20}",
        "job_type": "chat.suggest",
    }


async def main_async(n: int, folder: Path) -> dict[str, Any]:
    reply = Reply("Thank you so much!", usage=Usage(input_tokens=20, output_tokens=8))
    providers = {"*": ScriptedModel(default=reply)}
    plain = Majordome(MajordomeConfig(), providers=providers, env={})
    loop = FeedbackLoop(SQLiteEventStore(folder / "a.db"), spill_path=folder / "a.spill", seed=0)
    recorded = Majordome(MajordomeConfig(), providers=providers, env={}, feedback=loop)
    loop0 = FeedbackLoop(SQLiteEventStore(folder / "c.db"), spill_path=folder / "c.spill", learner=False)
    record_only = Majordome(MajordomeConfig(), providers=providers, env={}, feedback=loop0)
    loop2 = FeedbackLoop(SQLiteEventStore(folder / "b.db"), spill_path=folder / "b.spill", seed=0)
    budgets = InProcessBudgets(default=BudgetCaps(daily_usd=1e6, monthly_usd=1e7))
    budgeted = Majordome(MajordomeConfig(), providers=providers, env={}, feedback=loop2, budgets=budgets)
    variants = {
        "plain": plain,
        "recording only (learner off)": record_only,
        "feedback loop (learner on)": recorded,
        "feedback loop + budgets": budgeted,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(200):  # warm-up: tokenizer, classifier memo, SQLite files
        for mj in variants.values():
            await mj.ask(request(i))
    for i in range(n):
        for name, mj in variants.items():
            started = time.perf_counter()
            await mj.ask(request(i))
            times[name].append(time.perf_counter() - started)
    flushed = time.perf_counter()
    loop.close()
    loop0.close()
    loop2.close()
    flush_s = time.perf_counter() - flushed
    return {
        "requests": n,
        "latency": {name: summary_ms(values) for name, values in times.items()},
        "writer": {"written": loop.writer.metrics.written, "spilled": loop.writer.metrics.spilled},
        "close_and_flush_s": flush_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(main_async(300 if args.quick else args.n, Path(tmp)))
    latency = result["latency"]
    base = latency["plain"]["p50_ms"]
    rows = [
        [name, f"{s['p50_ms']:.3f}", f"{s['p99_ms']:.3f}", f"{s['p50_ms'] - base:+.3f}"] for name, s in latency.items()
    ]
    print_table(f"ask() per request, {result['requests']:,} each (ms)", ["variant", "p50", "p99", "p50 - plain"], rows)
    print(f"events written: {result['writer']}; close + flush {result['close_and_flush_s']:.2f} s")
    path = write_json(
        "feedback_overhead-quick" if args.quick else "feedback_overhead",
        {
            "command": command_line(),
            "machine": machine(),
            **result,
        },
    )
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
