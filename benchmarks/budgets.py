"""Budgets under contention: 200 concurrent requests from 4 worker processes (50 asyncio tasks
each) against one tenant's daily cap, shared through Redis (``RedisBudgets``).

Each request reserves a random estimate (0.001-0.02 USD), waits 0-10 ms (the model call), then
settles its actual cost; the demand (about 2 USD) is twice the cap (1 USD), so about half is
refused. Every run starts the four processes' bursts together (a barrier) on fresh keys. Two
scenarios:

- ``estimate holds``: actual = estimate x U(0.3, 1.0). Overspend must be 0: a request is let
  through only when spent + reserved + its estimate fit under the cap.
- ``estimate low``: actual = estimate x U(0.5, 1.5). Actual costs above their reservation are
  recorded, never refused after the fact, so the cap can be passed by what the requests in
  flight underestimated: the overspend measured here is that exposure.

    python benchmarks/budgets.py                          # needs MAJORDOME_TEST_REDIS_URL (scripts/services.sh up)
    python benchmarks/budgets.py --redis redis://127.0.0.1:6379/0 --runs 20

Reported: overspend (the maximum over the runs, USD), requests let through and refused, and the
latency of reserve, of settle and of both together (what budgets add to a request), p50/p99 over
all requests of all runs, measured inside the workers. In a burst that latency is mostly queueing
(200 scripts in line at one Redis, 50 requests per Python process), so a first row measures one
request at a time: the cost of the round trips alone. Targets: overspend 0 when estimates hold;
one request at a time, reserve + settle p99 <= 2 ms on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import time
import uuid
from typing import Any

from _common import ROOT, command_line, machine, print_table, summary_ms, write_json

from majordome import BudgetExceeded
from majordome.feedback.budgets import BudgetCaps, RedisBudgets

PROCESSES = 4
TASKS = 50
CAP_USD = 1.0
ESTIMATE_USD = (0.001, 0.02)
CALL_S = (0.0, 0.01)
SCENARIOS = {"estimate holds": (0.3, 1.0), "estimate low": (0.5, 1.5)}


def _redis_url(cli: str | None) -> str:
    if cli:
        return cli
    url = os.environ.get("MAJORDOME_TEST_REDIS_URL")
    if url:
        return url
    env_file = ROOT / ".services" / "env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.startswith("MAJORDOME_TEST_REDIS_URL="):
                return line.partition("=")[2]
    sys.exit("no Redis: pass --redis URL, set MAJORDOME_TEST_REDIS_URL, or run scripts/services.sh up")


# -- a worker process ----------------------------------------------------------------------------


def _worker(url: str, prefix: str, runs: int, factor: tuple[float, float], seed: int, barrier: Any, out: Any) -> None:
    """One worker process: a warm-up burst (its connections opened, as a long-running worker has
    them), then one burst per run on tenant ``run-<n>``, in step with the other workers; sends
    each run's per-request results: (settled USD or None when refused, reserve s, settle s or None)."""
    asyncio.run(_worker_async(url, prefix, runs, factor, seed, barrier, out))


async def _worker_async(
    url: str, prefix: str, runs: int, factor: tuple[float, float], seed: int, barrier: Any, out: Any
) -> None:
    rng = random.Random(seed)
    ledger = RedisBudgets(url, prefix=prefix, default=BudgetCaps(daily_usd=CAP_USD), timeout_s=10)

    async def one(
        tenant: str, estimate: float, share: float, call_s: float
    ) -> tuple[float | None, float, float | None]:
        started = time.perf_counter()
        try:
            reservation = await ledger.reserve(tenant, estimate)
        except BudgetExceeded:
            return None, time.perf_counter() - started, None
        reserve_s = time.perf_counter() - started
        await asyncio.sleep(call_s)
        actual = round(estimate * share, 9)
        started = time.perf_counter()
        await ledger.settle(reservation, actual)
        return actual, reserve_s, time.perf_counter() - started

    try:
        await asyncio.gather(*(one(f"warm-up-{seed}", 0.0, 1.0, 0.005) for _ in range(TASKS)))
        for run in range(runs):
            plans = [(rng.uniform(*ESTIMATE_USD), rng.uniform(*factor), rng.uniform(*CALL_S)) for _ in range(TASKS)]
            await asyncio.to_thread(barrier.wait)
            results = await asyncio.gather(*(one(f"run-{run}", *plan) for plan in plans))
            out.put((run, results))
    finally:
        await ledger.close()


# -- the parent ----------------------------------------------------------------------------------


async def _settled(url: str, prefix: str, runs: int) -> list[tuple[float, float]]:
    """(spent, still reserved) of each run's tenant."""
    ledger = RedisBudgets(url, prefix=prefix, default=BudgetCaps(daily_usd=CAP_USD))
    try:
        statuses = [await ledger.status(f"run-{run}") for run in range(runs)]
    finally:
        await ledger.close()
    return [(status.daily_spent, status.daily_reserved) for status in statuses]


async def _clean(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _scenario(url: str, name: str, runs: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    out = context.Queue()
    prefix = f"majordome-bench:{uuid.uuid4().hex[:12]}:"
    processes = [
        context.Process(target=_worker, args=(url, prefix, runs, SCENARIOS[name], 1000 * index + 7, barrier, out))
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    overspends: list[float] = []
    let_through = refused = 0
    reserve_s: list[float] = []
    settle_s: list[float] = []
    both_s: list[float] = []
    spent_per_run: list[float] = []
    by_run: dict[int, list[tuple[float | None, float, float | None]]] = {run: [] for run in range(runs)}
    try:
        for _ in range(runs * PROCESSES):
            run, requests = out.get(timeout=120)
            by_run[run].extend(requests)
        for run, (spent, reserved) in enumerate(asyncio.run(_settled(url, prefix, runs))):
            requests = by_run[run]
            settled = sum(actual for actual, _, _ in requests if actual is not None)
            if abs(settled - spent) > 1e-6 or reserved != 0:
                raise RuntimeError(f"ledger disagrees with the workers: {spent} spent, {settled} settled, {reserved}")
            overspends.append(max(0.0, spent - CAP_USD))
            for actual, reserve, settle in requests:
                reserve_s.append(reserve)
                if actual is None:
                    refused += 1
                    continue
                let_through += 1
                assert settle is not None
                settle_s.append(settle)
                both_s.append(reserve + settle)
            spent_per_run.append(spent)
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        asyncio.run(_clean(url, prefix))
    return {
        "runs": runs,
        "requests_per_run": PROCESSES * TASKS,
        "cap_usd": CAP_USD,
        "actual_over_estimate": SCENARIOS[name],
        "overspend_max_usd": max(overspends),
        "overspend_per_run_usd": overspends,
        "spent_per_run_usd": spent_per_run,
        "let_through": let_through,
        "refused": refused,
        "reserve": summary_ms(reserve_s),
        "settle": summary_ms(settle_s),
        "reserve_plus_settle": summary_ms(both_s),
    }


async def _uncontended(url: str, n: int) -> dict[str, Any]:
    """One request at a time from one process: the round trips alone, no queueing."""
    prefix = f"majordome-bench:{uuid.uuid4().hex[:12]}:"
    ledger = RedisBudgets(url, prefix=prefix, default=BudgetCaps(daily_usd=n * 1.0))
    reserve_s: list[float] = []
    settle_s: list[float] = []
    try:
        for i in range(n + 20):
            started = time.perf_counter()
            reservation = await ledger.reserve("alone", 0.01)
            reserved = time.perf_counter()
            await ledger.settle(reservation, 0.008)
            if i >= 20:  # after a warm-up
                reserve_s.append(reserved - started)
                settle_s.append(time.perf_counter() - reserved)
    finally:
        await ledger.close()
        await _clean(url, prefix)
    return {
        "n": n,
        "reserve": summary_ms(reserve_s),
        "settle": summary_ms(settle_s),
        "reserve_plus_settle": summary_ms([a + b for a, b in zip(reserve_s, settle_s, strict=True)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="Redis URL (default: MAJORDOME_TEST_REDIS_URL or .services/env)")
    parser.add_argument("--runs", type=int, default=10, help="bursts per scenario (default 10)")
    args = parser.parse_args()
    url = _redis_url(args.redis)

    alone = asyncio.run(_uncontended(url, 500))
    results = {name: _scenario(url, name, args.runs) for name in SCENARIOS}
    rows = [
        [
            "one request at a time (1 process)",
            f"1 x {alone['n']}",
            alone["n"],
            0,
            "",
            alone["reserve"]["p50_ms"],
            alone["reserve"]["p99_ms"],
            alone["settle"]["p50_ms"],
            alone["settle"]["p99_ms"],
            alone["reserve_plus_settle"]["p50_ms"],
            alone["reserve_plus_settle"]["p99_ms"],
        ]
    ]
    rows += [
        [
            name,
            f"{r['runs']} x {r['requests_per_run']}",
            r["let_through"],
            r["refused"],
            r["overspend_max_usd"],
            r["reserve"]["p50_ms"],
            r["reserve"]["p99_ms"],
            r["settle"]["p50_ms"],
            r["settle"]["p99_ms"],
            r["reserve_plus_settle"]["p50_ms"],
            r["reserve_plus_settle"]["p99_ms"],
        ]
        for name, r in results.items()
    ]
    print_table(
        f"Budgets on Redis: {PROCESSES} processes x {TASKS} concurrent requests, daily cap {CAP_USD:.2f} USD",
        [
            "scenario",
            "runs x requests",
            "let through",
            "refused",
            "max overspend USD",
            "reserve p50 ms",
            "reserve p99 ms",
            "settle p50 ms",
            "settle p99 ms",
            "both p50 ms",
            "both p99 ms",
        ],
        rows,
    )
    met = {
        "no_overspend_when_estimates_hold": results["estimate holds"]["overspend_max_usd"] == 0,
        "uncontended_reserve_plus_settle_p99_le_2ms": alone["reserve_plus_settle"]["p99_ms"] <= 2,
    }
    print(f"targets: {met}")
    write_json(
        "budgets",
        {
            "benchmark": "budgets",
            "command": command_line(),
            "machine": machine(),
            "redis_server": asyncio.run(_redis_version(url)),
            "uncontended": alone,
            "results": results,
            "targets_met": met,
        },
    )


async def _redis_version(url: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return str(info.get("redis_version", "unknown"))


if __name__ == "__main__":
    main()
