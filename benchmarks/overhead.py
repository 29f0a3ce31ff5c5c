"""Orchestration overhead per request: what majordome adds around a model that answers at once.

Every catalogue slot is served by a zero-latency :class:`ScriptedModel`, so the time of a call
is majordome's own work: validating the request, routing, the deadline and fallback chain, the
resilient layer (breaker, timeout, usage estimate with the tokenizer, cost), building the answer.
Calls are awaited one after another on one event loop, after a warm-up (the first call loads
the tokenizer); requests/s counts the loop's turn between calls too.

    python benchmarks/overhead.py            # 20,000 ask(), 20,000 stream(), 5,000 ask_sync()
    python benchmarks/overhead.py --quick    # a smoke run

Target: ask() p50 <= 0.5 ms and p99 <= 2 ms. stream(), ask_sync() and ask() with INFO logs
enabled are measured for information.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import RESULTS, command_line, machine, print_table, summary_ms, write_json

from majordome import Completed, Majordome
from majordome.models.base import ModelRequest
from majordome.models.messages import Message
from majordome.testing import ScriptedModel

TARGET_P50_MS = 0.5
TARGET_P99_MS = 2.0

ANSWER = "Thank you so much, that made my day too!"
REQUEST: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are a friendly creator. Reply warmly in one short sentence."},
        {"role": "user", "content": "Loved your last video, you made my day!"},
    ],
    "tenant": "creator_42",
    "job_type": "chat.suggest",
}


async def _timed(call: Callable[[], Awaitable[Any]], n: int, reset: Callable[[], None]) -> tuple[list[float], float]:
    """``n`` sequential awaits of ``call``: each one's duration, and the wall time of all.

    Between calls, outside the timed part, the loop runs once, as in a worker that awaits its
    next job. A zero-latency model never suspends: without this the loop would never run, and
    the timer handles of each call's ``asyncio.timeout`` (cancelled, but only swept from the
    loop's heap by the loop itself) would pile up and make garbage collection ever slower.
    """
    durations = [0.0] * n
    clock = time.perf_counter
    started = clock()
    for i in range(n):
        if i % 1000 == 999:
            reset()  # the scripted model records every call; keep that list from growing
        await asyncio.sleep(0)
        t0 = clock()
        await call()
        durations[i] = clock() - t0
    return durations, clock() - started


def _row(name: str, durations: list[float], wall: float) -> dict[str, Any]:
    return {"mode": name, **summary_ms(durations), "requests_per_s": len(durations) / wall, "wall_s": wall}


async def _measure_async(
    mj: Majordome, model: ScriptedModel, n: int, warmup: int
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    def reset() -> None:
        model.calls.clear()

    async def ask() -> None:
        await mj.ask(REQUEST)

    async def stream() -> None:
        async for event in mj.stream(REQUEST):
            if isinstance(event, Completed):
                assert event.answer.text == ANSWER

    # The model alone (no majordome), for scale: what an await of the scripted model costs.
    bare = ModelRequest(messages=[Message.model_validate(m) for m in REQUEST["messages"]], max_output_tokens=1024)

    async def model_only() -> None:
        await model.complete(bare)

    rows: list[dict[str, Any]] = []
    samples: dict[str, list[float]] = {}
    for name, call in (("ask()", ask), ("stream()", stream), ("scripted model alone", model_only)):
        await _timed(call, warmup, reset)
        durations, wall = await _timed(call, n, reset)
        rows.append(_row(name, durations, wall))
        samples[name] = durations
    return rows, samples


async def _measure_logged(mj: Majordome, model: ScriptedModel, n: int, warmup: int) -> dict[str, Any]:
    """ask() with the majordome loggers at INFO (two JSON events per call) into a NullHandler."""
    logger = logging.getLogger("majordome")
    level, propagate = logger.level, logger.propagate
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:

        async def ask() -> None:
            await mj.ask(REQUEST)

        await _timed(ask, warmup, model.calls.clear)
        durations, wall = await _timed(ask, n, model.calls.clear)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return _row("ask(), INFO logs on", durations, wall)


def _measure_sync(mj: Majordome, model: ScriptedModel, n: int, warmup: int) -> tuple[dict[str, Any], list[float]]:
    clock = time.perf_counter
    for _ in range(warmup):
        mj.ask_sync(REQUEST)
    durations = [0.0] * n
    started = clock()
    for i in range(n):
        if i % 1000 == 999:
            model.calls.clear()
        t0 = clock()
        mj.ask_sync(REQUEST)
        durations[i] = clock() - t0
    return _row("ask_sync()", durations, clock() - started), durations


def _plot(samples: dict[str, list[float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'majordome[bench]')")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, durations in samples.items():
        ordered = sorted(d * 1000 for d in durations)
        ax.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=name)
    ax.axvline(TARGET_P50_MS, color="grey", linestyle=":", label="p50 target")
    ax.axvline(TARGET_P99_MS, color="grey", linestyle="--", label="p99 target")
    ax.set_xscale("log")
    ax.set_xlabel("latency per request (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("majordome orchestration overhead (zero-latency model)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = RESULTS / "overhead.png"
    fig.savefig(path, dpi=110)
    print(f"plot written to {path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("-n", type=int, default=None, help="requests per async mode (default 20000)")
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 20_000)
    n_sync = max(n // 4, 100)
    warmup = 200 if args.quick else 2_000

    model = ScriptedModel(default=ANSWER)
    mj = Majordome(providers={"*": model}, env={})

    async def first_call() -> float:
        t0 = time.perf_counter()
        await mj.ask(REQUEST)
        return time.perf_counter() - t0

    async def run_async() -> tuple[float, list[dict[str, Any]], dict[str, list[float]], dict[str, Any]]:
        first = await first_call()
        rows, samples = await _measure_async(mj, model, n, warmup)
        logged = await _measure_logged(mj, model, n, warmup)
        return first, rows, samples, logged

    first_s, rows, samples, logged = asyncio.run(run_async())
    sync_row, sync_samples = _measure_sync(mj, model, n_sync, min(warmup, n_sync))
    mj.close()
    rows = [rows[0], rows[1], sync_row, logged, rows[2]]
    samples["ask_sync()"] = sync_samples
    samples.pop("scripted model alone")

    ask = rows[0]
    met = ask["p50_ms"] <= TARGET_P50_MS and ask["p99_ms"] <= TARGET_P99_MS
    print_table(
        f"Orchestration overhead, sequential calls, zero-latency model (first call: {first_s * 1000:.0f} ms)",
        ["mode", "n", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "req/s"],
        [
            [
                r["mode"],
                r["n"],
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
                r["p99_9_ms"],
                r["max_ms"],
                round(r["requests_per_s"]),
            ]
            for r in rows
        ],
    )
    print(
        f"target ask(): p50 <= {TARGET_P50_MS} ms and p99 <= {TARGET_P99_MS} ms -> "
        f"p50 {ask['p50_ms']:.3f} ms, p99 {ask['p99_ms']:.3f} ms: {'MET' if met else 'MISSED'}"
    )
    write_json(
        "overhead" + ("-quick" if args.quick else ""),
        {
            "benchmark": "overhead",
            "command": command_line(),
            "machine": machine(),
            "requests_per_mode": n,
            "ask_sync_requests": n_sync,
            "warmup_per_mode": warmup,
            "first_call_ms": first_s * 1000,
            "target": {"ask_p50_ms": TARGET_P50_MS, "ask_p99_ms": TARGET_P99_MS, "met": met},
            "rows": rows,
        },
    )
    if not args.quick:
        _plot(samples)


if __name__ == "__main__":
    main()
