"""Fault soak: 10,000 requests through a three-model fallback chain whose endpoints fail on purpose.

Three stub processes (``python -m majordome.testing.stub_server --fault-rate 0.2``) each answer
a fifth of their calls with a fault drawn from: 429 with Retry-After, 500, an answer slower than
the attempt timeout, a connection reset, broken JSON, a stream cut midway. The chain is
DeepSeek-V3 -> Mistral-Large -> Llama-3.3-70B (the catalogue's fallbacks), each slot on its own
stub, served by api=openai, api=azure-ai-inference and api=openai (``--apis``). Half the requests
use ask(), half stream(); at most ``--in-flight`` run at once; each has a deadline, and an outer
timeout far beyond it catches a hang. The provider SDKs and the tokenizer are loaded first, as
in a worker that has been running.

    python benchmarks/fault_soak.py                          # the library's default circuit breaker
    python benchmarks/fault_soak.py --breaker 200,1,1        # a breaker that practically never opens
    python benchmarks/fault_soak.py --quick                  # 1,000 requests, a smoke run

Checks: every request ends answered or with a typed error (a MajordomeError), within its
deadline plus a tolerance; none hangs; none is lost. Reports the counts by outcome and the
latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from _common import command_line, machine, print_table, slot_env, stub_process, summary_ms, write_json

from majordome import (
    AllCandidatesFailed,
    Answer,
    BreakerPolicy,
    Completed,
    DeadlineExceeded,
    Majordome,
    MajordomeConfig,
    MajordomeError,
    RetryPolicy,
    TextDelta,
)

# The catalogue's fallbacks of deepseek-v3 give this order; --apis says which provider serves each.
CHAIN = ("deepseek-v3", "mistral-large", "llama-3.3-70b")
DEFAULT_APIS = "openai,azure-ai-inference,openai"
FAULTS = "429 + Retry-After 0.05 s, 500, slow (past the attempt timeout), reset, broken JSON, stream cut"


@dataclass
class Outcome:
    kind: str  # "ask" or "stream"
    outcome: str
    elapsed_s: float
    attempts: int = 0
    causes: tuple[str, ...] = ()
    streamed_chars: int = 0


@dataclass
class Tally:
    in_flight: int = 0
    peak_in_flight: int = 0
    loop_lag_s: list[float] = field(default_factory=list)
    worst_lag_at_s: float = 0.0  # seconds into the soak when the event loop was latest


def _answered(answer: Answer) -> str:
    if answer.model != answer.decision.chain[0]:
        return "answered by fallback"
    if len(answer.attempts) > 1:
        return "answered after retry"
    return "answered first try"


def _causes(error: BaseException) -> tuple[str, ...]:
    if isinstance(error, AllCandidatesFailed | DeadlineExceeded):
        return tuple(type(cause).__name__ for _, cause in error.causes)
    return ()


async def _one(
    mj: Majordome, index: int, kind: str, deadline_s: float, hang_after_s: float, hinted: bool = True
) -> Outcome:
    request: dict[str, object] = {
        "messages": [{"role": "user", "content": f"Soak request {index}: say hello."}],
        "tenant": f"creator_{index % 50}",
        "max_output_tokens": 64,
        "deadline_s": deadline_s,
    }
    if hinted:  # a worker knows what it asks for; a chatbot's request is classified (--unhinted)
        request.update(intent="general_help", language="en")
    started = time.monotonic()
    streamed = 0
    outer = asyncio.timeout(hang_after_s)
    try:
        async with outer:
            if kind == "ask":
                answer = await mj.ask(request)
            else:
                completed = None
                async for event in mj.stream(request):
                    if isinstance(event, TextDelta):
                        streamed += len(event.text)
                    elif isinstance(event, Completed):
                        completed = event.answer
                if completed is None:
                    return Outcome(kind, "UNTYPED: stream ended without Completed", time.monotonic() - started)
                answer = completed
    except MajordomeError as error:
        return Outcome(
            kind, type(error).__name__, time.monotonic() - started, causes=_causes(error), streamed_chars=streamed
        )
    except TimeoutError:
        if outer.expired():
            return Outcome(kind, "HANG", time.monotonic() - started)
        return Outcome(kind, "UNTYPED: TimeoutError", time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - an untyped error is what this soak looks for
        return Outcome(kind, f"UNTYPED: {type(error).__name__}: {error}", time.monotonic() - started)
    if not answer.text:
        return Outcome(kind, "UNTYPED: empty answer", time.monotonic() - started)
    return Outcome(
        kind, _answered(answer), time.monotonic() - started, attempts=len(answer.attempts), streamed_chars=streamed
    )


async def _lag_monitor(tally: Tally, stop: asyncio.Event) -> None:
    """How late the event loop wakes a 50 ms sleeper: the queueing every request also sees."""
    started = time.monotonic()
    while not stop.is_set():
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        lag = time.monotonic() - t0 - 0.05
        if not tally.loop_lag_s or lag > max(tally.loop_lag_s):
            tally.worst_lag_at_s = t0 - started
        tally.loop_lag_s.append(lag)


async def _soak(
    mj: Majordome, n: int, in_flight: int, deadline_s: float, hang_after_s: float, progress: bool, hinted: bool
) -> tuple[list[Outcome | None], Tally, float]:
    results: list[Outcome | None] = [None] * n
    tally = Tally()
    indices: Iterator[int] = iter(range(n))
    stop = asyncio.Event()

    async def worker() -> None:
        for index in indices:  # shared iterator: each index goes to exactly one worker
            kind = "stream" if index % 2 else "ask"
            tally.in_flight += 1
            tally.peak_in_flight = max(tally.peak_in_flight, tally.in_flight)
            try:
                results[index] = await _one(mj, index, kind, deadline_s, hang_after_s, hinted)
            finally:
                tally.in_flight -= 1
            if progress and index % 1000 == 999:
                print(f"  {index + 1} requests started ...", flush=True)
            # A worker awaits its next job (a queue, a socket): a request that fails fast (open
            # circuits) never suspends, so without this one worker could run many in a row.
            await asyncio.sleep(0)

    monitor = asyncio.create_task(_lag_monitor(tally, stop))
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall = time.monotonic() - started
    stop.set()
    await monitor
    return results, tally, wall


def _preload() -> None:
    """What a long-running worker has loaded before its first request: the provider SDKs (majordome
    imports them on first use, on the event loop) and the tokenizer."""
    import azure.ai.inference.aio
    import openai

    from majordome.models.tokens import count_tokens

    del azure, openai
    count_tokens("warm-up")


def _parse_breaker(text: str | None) -> BreakerPolicy:
    if text is None:
        return BreakerPolicy()
    failures, window, open_s = text.split(",")
    return BreakerPolicy(failures=int(failures), window_s=float(window), open_s=float(open_s))


@contextlib.contextmanager
def _stubs(count: int, latency: float, fault_rate: float, timeout_delay: float) -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                stub_process(latency=latency, fault_rate=fault_rate, timeout_delay=timeout_delay, seed=seed)
            )
            for seed in range(1, count + 1)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 requests, 100 in flight")
    parser.add_argument("-n", "--requests", type=int, default=None, help="default 10000")
    parser.add_argument("--in-flight", type=int, default=None, help="concurrent requests (default 200)")
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--latency", type=float, default=0.02, help="the stubs' normal answer delay (s)")
    parser.add_argument("--attempt-timeout", type=float, default=1.0, help="each slot's timeout_s")
    parser.add_argument("--timeout-delay", type=float, default=2.0, help="delay of the stubs' 'slow' fault (s)")
    parser.add_argument("--deadline", type=float, default=4.0, help="each request's deadline_s")
    parser.add_argument("--tolerance", type=float, default=0.25, help="allowed lateness past the deadline (s)")
    parser.add_argument(
        "--breaker",
        metavar="FAILURES,WINDOW_S,OPEN_S",
        default=None,
        help="circuit breaker policy (default: the library's: 3 failures that are at least half of "
        "the last 50 calls in 300 s open it for 60 s)",
    )
    parser.add_argument(
        "--apis",
        default=DEFAULT_APIS,
        help=f"the provider of each slot of {' -> '.join(CHAIN)} (default {DEFAULT_APIS})",
    )
    parser.add_argument("--name", default=None, help="result file name (default fault_soak[-quick])")
    parser.add_argument(
        "--unhinted", action="store_true", help="no intent/language hints: every (unique) request is classified"
    )
    args = parser.parse_args()
    n = args.requests or (1_000 if args.quick else 10_000)
    in_flight = args.in_flight or (100 if args.quick else 200)
    hang_after_s = args.deadline + 30.0
    breaker = _parse_breaker(args.breaker)
    apis = args.apis.split(",")
    if len(apis) != len(CHAIN) or not set(apis) <= {"openai", "azure-ai-inference"}:
        parser.error(f"--apis takes {len(CHAIN)} of openai, azure-ai-inference, comma-separated")
    chain = dict(zip(CHAIN, apis, strict=True))
    retry = RetryPolicy(
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_max_s=0.1,
        max_retry_after_s=1.0,
        stream_idle_timeout_s=args.attempt_timeout,
    )
    config = MajordomeConfig(retry=retry, breaker=breaker)
    # The warnings majordome (request.failed) and azure-core (a cut stream) log are still rendered,
    # as in a worker with logging set up, but go nowhere instead of to stderr.
    logging.getLogger().addHandler(logging.NullHandler())

    with _stubs(len(CHAIN), args.latency, args.fault_rate, args.timeout_delay) as urls:
        slots = {model_id: (api, url) for (model_id, api), url in zip(chain.items(), urls, strict=True)}
        timeouts = {
            f"MAJORDOME_MODEL__{m.upper().replace('-', '_').replace('.', '_')}__TIMEOUT_S": str(args.attempt_timeout)
            for m in chain
        }
        mj = Majordome(config, env=slot_env(slots, timeouts))
        _preload()
        print(
            f"soak: {n} requests (half ask, half stream), {in_flight} in flight, chain "
            f"{' -> '.join(f'{m} ({a})' for m, a in chain.items())}; faults at {args.fault_rate:.0%}: {FAULTS}",
            flush=True,
        )

        async def run() -> tuple[list[Outcome | None], Tally, float]:
            try:
                return await _soak(
                    mj, n, in_flight, args.deadline, hang_after_s, progress=not args.quick, hinted=not args.unhinted
                )
            finally:
                await mj.aclose()

        results, tally, wall = asyncio.run(run())

    done = [r for r in results if r is not None]
    lost = n - len(done)
    counts = Counter(r.outcome for r in done)
    by_kind = {kind: Counter(r.outcome for r in done if r.kind == kind) for kind in ("ask", "stream")}
    untyped = {k: v for k, v in counts.items() if k.startswith("UNTYPED")}
    hangs = counts.get("HANG", 0)
    late = [r for r in done if r.elapsed_s > args.deadline + args.tolerance]
    over = sorted(r.elapsed_s - args.deadline for r in done if r.elapsed_s > args.deadline)
    cause_counts = Counter(c for r in done for c in r.causes)
    answered = [r for r in done if r.outcome.startswith("answered")]

    order = ["answered first try", "answered after retry", "answered by fallback"]
    order += sorted(k for k in counts if k not in order)
    rows = []
    for outcome in order:
        if outcome not in counts:
            continue
        latencies = summary_ms([r.elapsed_s for r in done if r.outcome == outcome])
        rows.append(
            [
                outcome,
                counts[outcome],
                f"{counts[outcome] / n:.1%}",
                by_kind["ask"].get(outcome, 0),
                by_kind["stream"].get(outcome, 0),
                latencies["p50_ms"],
                latencies["p99_ms"],
                latencies["max_ms"],
            ]
        )
    everything = summary_ms([r.elapsed_s for r in done])
    rows.append(
        [
            "all",
            len(done),
            "100%" if not lost else f"{len(done) / n:.1%}",
            sum(by_kind["ask"].values()),
            sum(by_kind["stream"].values()),
            everything["p50_ms"],
            everything["p99_ms"],
            everything["max_ms"],
        ]
    )
    print_table(
        f"Fault soak: {n} requests in {wall:.1f} s ({n / wall:.0f} req/s), {os.cpu_count()} CPUs, "
        f"breaker {breaker.failures} failures/{breaker.window_s:g} s -> open {breaker.open_s:g} s",
        ["outcome", "count", "share", "ask", "stream", "p50 ms", "p99 ms", "max ms"],
        rows,
    )
    if cause_counts:
        print(
            "causes inside AllCandidatesFailed / DeadlineExceeded: "
            + ", ".join(f"{k} {v}" for k, v in cause_counts.most_common())
        )
    lag = summary_ms(tally.loop_lag_s)
    print(
        f"event-loop lag (50 ms sleeper): p50 {lag.get('p50_ms', 0):.1f} ms, p99 {lag.get('p99_ms', 0):.1f} ms, "
        f"max {lag.get('max_ms', 0):.1f} ms ({tally.worst_lag_at_s:.1f} s into the soak); "
        f"peak in flight {tally.peak_in_flight}"
    )
    checks = {
        "none_lost": lost == 0,
        "none_hangs": hangs == 0,
        "all_typed": not untyped,
        "all_within_deadline_plus_tolerance": not late,
    }
    verdict = "ALL MET" if all(checks.values()) else "MISSED: " + ", ".join(k for k, v in checks.items() if not v)
    print(
        f"checks: lost {lost}, hangs {hangs}, untyped {sum(untyped.values())}, past deadline + "
        f"{args.tolerance:g} s: {len(late)} (past the deadline at all: {len(over)}, by at most "
        f"{(over[-1] * 1000) if over else 0:.0f} ms) -> {verdict}"
    )
    for outcome, count in untyped.items():
        print(f"  {count} x {outcome}")
    name = args.name or ("fault_soak" + ("-quick" if args.quick else ""))
    write_json(
        name,
        {
            "benchmark": "fault_soak",
            "command": command_line(),
            "machine": machine(),
            "settings": {
                "requests": n,
                "in_flight": in_flight,
                "fault_rate": args.fault_rate,
                "faults": FAULTS,
                "stub_latency_s": args.latency,
                "attempt_timeout_s": args.attempt_timeout,
                "slow_fault_delay_s": args.timeout_delay,
                "deadline_s": args.deadline,
                "tolerance_s": args.tolerance,
                "hang_after_s": hang_after_s,
                "retry": retry.model_dump(),
                "breaker": breaker.model_dump(),
                "chain": chain,
                "hinted": not args.unhinted,
            },
            "wall_s": wall,
            "requests_per_s": n / wall,
            "checks": checks,
            "lost": lost,
            "hangs": hangs,
            "untyped": untyped,
            "past_deadline": {
                "count": len(over),
                "max_ms": over[-1] * 1000 if over else 0.0,
                "past_tolerance": len(late),
            },
            "outcomes": dict(counts),
            "outcomes_by_kind": {k: dict(v) for k, v in by_kind.items()},
            "causes": dict(cause_counts),
            "latency_all": everything,
            "latency_answered": summary_ms([r.elapsed_s for r in answered]),
            "latency_by_outcome": {o: summary_ms([r.elapsed_s for r in done if r.outcome == o]) for o in counts},
            "attempts_answered": dict(Counter(r.attempts for r in answered)),
            "loop_lag": {**lag, "worst_at_s": tally.worst_lag_at_s},
            "peak_in_flight": tally.peak_in_flight,
        },
    )


if __name__ == "__main__":
    main()
