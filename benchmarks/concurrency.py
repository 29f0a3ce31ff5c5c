"""1,000 concurrent requests against a loopback stub that answers in 50 ms: majordome (through
its OpenAI-compatible and its Azure AI Inference provider) side by side with LiteLLM and with a
bare aiohttp client (the floor this machine allows).

Each contender runs in its own process against its own stub process (``python -m
majordome.testing.stub_server --latency 0.05``), inside ``majordome.testing.block_network()``
(any connection off loopback would be refused and counted). One request first (imports, client,
tokenizer), then a *cold* burst (the connection pool holds at most one connection, so the burst
opens the others), then *warm* bursts on the same client, as a long-running worker would have.

    python benchmarks/concurrency.py            # 1,000 concurrent, 1 cold + 3 warm bursts
    python benchmarks/concurrency.py --quick    # 200 concurrent, 1 cold + 1 warm burst
    python benchmarks/concurrency.py --diagnose # the openai SDK alone, three ways: where api=openai time goes

Target: majordome's warm burst of 1,000 completes in <= 1.5 s. LiteLLM needs ``pip install
'majordome[compare]'``; without it that row is skipped. Overhead = wall time - 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, command_line, machine, print_table, slot_env, stub_process, summary_ms, write_json

TARGET_WALL_S = 1.5
TARGET_REQUESTS = 1000
STUB_TEXT = "Hello from the stub."
MESSAGES = [{"role": "user", "content": "Hello, how are you today?"}]
MAX_TOKENS = 64
CONTENDERS = ("aiohttp", "majordome-openai", "majordome-azure", "majordome-openai-routed", "litellm")
# The openai SDK alone, three ways (--diagnose): where majordome's api=openai time goes.
DIAGNOSTICS = ("openai-sdk", "openai-sdk-aiohttp", "openai-sdk-aiohttp-post")
LABELS = {
    "aiohttp": "bare aiohttp (floor)",
    "majordome-openai": "majordome, api=openai",
    "majordome-azure": "majordome, api=azure-ai-inference",
    "majordome-openai-routed": "majordome, api=openai, every prompt new, no hints",
    "litellm": "litellm.acompletion",
    "openai-sdk": "openai SDK alone, httpx2 pool (as majordome)",
    "openai-sdk-aiohttp": "openai SDK alone, DefaultAioHttpClient",
    "openai-sdk-aiohttp-post": "openai SDK, aiohttp, post() without transform",
}

Call = Callable[[], Awaitable[str]]


# -- the contenders (each in its own worker process) -------------------------------------------


async def _aiohttp_client(url: str, concurrency: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    body = {"model": "DeepSeek-V3", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    async def call() -> str:
        async with session.post(f"{url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            data = await response.json()
        return str(data["choices"][0]["message"]["content"])

    return call, session.close


async def _majordome_client(url: str, api: str, routed: bool = False) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """A worker's request (its job type names the intent: no classification), or, ``routed``,
    a chatbot's: a prompt never seen before and no hint, so every request is classified."""
    from majordome import Majordome

    mj = Majordome(env=slot_env({"deepseek-v3": (api, url)}))
    request = {"messages": MESSAGES, "tenant": "bench", "max_output_tokens": MAX_TOKENS, "job_type": "chat.suggest"}
    counter = iter(range(10**9))

    async def call() -> str:
        if routed:
            text = f"{MESSAGES[0]['content']} ({next(counter)})"
            answer = await mj.ask(
                {"messages": [{"role": "user", "content": text}], "tenant": "bench", "max_output_tokens": MAX_TOKENS}
            )
        else:
            answer = await mj.ask(request)
        return answer.text

    return call, mj.aclose


async def _openai_sdk_client(url: str, concurrency: int, variant: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """The SDK configured as majordome's OpenAICompatibleModel does, or with aiohttp underneath."""
    import httpx2
    import openai
    from openai.types.chat import ChatCompletion

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx2.Timeout(600.0, connect=30.0)
    http_client: Any
    if variant == "openai-sdk":
        http_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
    else:
        http_client = openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, http_client=http_client)
    body = {"model": "DeepSeek-V3", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    async def call() -> str:
        if variant == "openai-sdk-aiohttp-post":  # the body is JSON already: skip the params transform
            completion = await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        else:
            completion = await client.chat.completions.create(**body)  # type: ignore[call-overload]
        return str(completion.choices[0].message.content)

    return call, client.close


async def _litellm_client(url: str, concurrency: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import logging

    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)

    async def call() -> str:
        response = await litellm.acompletion(
            model="openai/DeepSeek-V3",
            api_base=f"{url}/v1",
            api_key="x",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            num_retries=0,
        )
        return str(response.choices[0].message.content)

    async def close() -> None:
        return None

    return call, close


async def _burst(call: Call, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            text = await call()
        except Exception as error:  # noqa: BLE001 - counted and reported
            errors[type(error).__name__] += 1
            return
        if text != STUB_TEXT:
            errors["wrong answer"] += 1
            return
        latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    async with asyncio.timeout(300):
        await asyncio.gather(*(one() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "ok": len(latencies), "errors": dict(errors), "latency": summary_ms(latencies)}


async def _work(contender: str, url: str, concurrency: int, bursts: int) -> dict[str, Any]:
    from majordome.testing import block_network

    with block_network() as violations:
        t0 = time.perf_counter()
        if contender == "aiohttp":
            call, close = await _aiohttp_client(url, concurrency)
        elif contender == "majordome-openai":
            call, close = await _majordome_client(url, "openai")
        elif contender == "majordome-azure":
            call, close = await _majordome_client(url, "azure-ai-inference")
        elif contender == "majordome-openai-routed":
            call, close = await _majordome_client(url, "openai", routed=True)
        elif contender == "litellm":
            call, close = await _litellm_client(url, concurrency)
        elif contender in DIAGNOSTICS:
            call, close = await _openai_sdk_client(url, concurrency, contender)
        else:
            raise ValueError(contender)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        first_text = await call()
        first = time.perf_counter() - t0
        assert first_text == STUB_TEXT, first_text
        cold = await _burst(call, concurrency)
        warm = [await _burst(call, concurrency) for _ in range(bursts)]
        await close()
    return {
        "contender": contender,
        "setup_s": setup,
        "first_request_s": first,
        "cold": cold,
        "warm": warm,
        "network_violations": list(violations),
    }


def _worker(args: argparse.Namespace) -> None:
    result = asyncio.run(_work(args.worker, args.url, args.concurrency, args.bursts))
    print("RESULT " + json.dumps(result), flush=True)


# -- the driver --------------------------------------------------------------------------------


def _run_contender(contender: str, concurrency: int, bursts: int, latency: float) -> dict[str, Any] | None:
    env = dict(os.environ)
    if contender == "litellm":
        if importlib_util.find_spec("litellm") is None:
            print("litellm is not installed (pip install 'majordome[compare]'): skipped")
            return None
        # Offline: the packaged cost map, no telemetry; and an aiohttp pool as large as majordome's
        # (LiteLLM's default is 500 connections per host).
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_TELEMETRY="False",
            LITELLM_LOG="ERROR",
            AIOHTTP_CONNECTOR_LIMIT=str(max(concurrency, 1000)),
            AIOHTTP_CONNECTOR_LIMIT_PER_HOST=str(max(concurrency, 1000)),
        )
    with stub_process(latency=latency) as url:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            contender,
            "--url",
            url,
            "-c",
            str(concurrency),
            "--bursts",
            str(bursts),
        ]
        print(f"running {LABELS[contender]} ...", flush=True)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    print(f"{contender} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _plot(results: list[dict[str, Any]], concurrency: int, name: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [LABELS[r["contender"]] for r in results]
    cold = [r["cold"]["wall_s"] for r in results]
    warm = [_median([b["wall_s"] for b in r["warm"]]) for r in results]
    positions = range(len(results))
    ax.barh([p + 0.2 for p in positions], cold, height=0.4, label="cold pool")
    ax.barh([p - 0.2 for p in positions], warm, height=0.4, label="warm pool (median)")
    ax.axvline(TARGET_WALL_S, color="grey", linestyle="--", label=f"target {TARGET_WALL_S} s")
    ax.set_yticks(list(positions), names)
    ax.set_xlabel(f"wall time of {concurrency} concurrent requests (s); stub answers in 50 ms")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    print(f"plot written to {path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("-c", "--concurrency", type=int, default=None, help="requests per burst (default 1000)")
    parser.add_argument("--bursts", type=int, default=None, help="warm bursts after the cold one (default 3)")
    parser.add_argument("--latency", type=float, default=0.05, help="the stub's answer delay in seconds")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS + DIAGNOSTICS, help="run these contenders only")
    parser.add_argument(
        "--diagnose", action="store_true", help="only the openai SDK alone, three ways (concurrency-diagnose.json)"
    )
    parser.add_argument("--worker", choices=CONTENDERS + DIAGNOSTICS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.concurrency = args.concurrency or (200 if args.quick else 1000)
    args.bursts = args.bursts or (1 if args.quick else 3)
    if args.worker:
        _worker(args)
        return

    results = []
    if args.diagnose:
        result_name = "concurrency-diagnose"
    elif args.only:
        result_name = "concurrency-partial"
    else:
        result_name = "concurrency"
    result_name += "-quick" if args.quick else ""
    for contender in args.only or (DIAGNOSTICS if args.diagnose else CONTENDERS):
        result = _run_contender(contender, args.concurrency, args.bursts, args.latency)
        if result is not None:
            results.append(result)
    rows = []
    for r in results:
        warm_walls = [b["wall_s"] for b in r["warm"]]
        warm_median = _median(warm_walls)
        r["warm_wall_median_s"] = warm_median
        r["warm_overhead_s"] = warm_median - args.latency
        r["cold_overhead_s"] = r["cold"]["wall_s"] - args.latency
        errors = sum(sum(b["errors"].values()) for b in [r["cold"], *r["warm"]])
        warm_p50 = _median([b["latency"].get("p50_ms", float("nan")) for b in r["warm"]])
        warm_p99 = _median([b["latency"].get("p99_ms", float("nan")) for b in r["warm"]])
        rows.append(
            [
                LABELS[r["contender"]],
                r["cold"]["wall_s"],
                warm_median,
                f"{min(warm_walls):.3f}-{max(warm_walls):.3f}",
                warm_p50,
                warm_p99,
                errors,
                len(r["network_violations"]),
            ]
        )
    print_table(
        f"{args.concurrency} concurrent requests, stub latency {args.latency * 1000:.0f} ms, "
        f"1 cold + {args.bursts} warm bursts per contender ({os.cpu_count()} CPUs)",
        [
            "contender",
            "cold wall s",
            "warm wall s (median)",
            "warm range s",
            "warm p50 ms",
            "warm p99 ms",
            "errors",
            "off-loopback",
        ],
        rows,
    )

    by_name = {r["contender"]: r for r in results}
    comparison = {}
    if "litellm" in by_name:
        litellm = by_name["litellm"]
        for name in ("majordome-openai", "majordome-azure"):
            if name in by_name:
                ours = by_name[name]
                comparison[name] = {
                    "warm_overhead_ratio_litellm_over_majordome": litellm["warm_overhead_s"] / ours["warm_overhead_s"],
                    "cold_overhead_ratio_litellm_over_majordome": litellm["cold_overhead_s"] / ours["cold_overhead_s"],
                }
                print(
                    f"overhead (wall - {args.latency * 1000:.0f} ms), litellm / {LABELS[name]}: warm "
                    f"{litellm['warm_overhead_s']:.3f} s / {ours['warm_overhead_s']:.3f} s = "
                    f"{comparison[name]['warm_overhead_ratio_litellm_over_majordome']:.2f}x, cold "
                    f"{litellm['cold_overhead_s']:.3f} s / {ours['cold_overhead_s']:.3f} s = "
                    f"{comparison[name]['cold_overhead_ratio_litellm_over_majordome']:.2f}x"
                )
    targets = {}
    if args.concurrency != TARGET_REQUESTS:
        print(f"target ({TARGET_REQUESTS} requests in <= {TARGET_WALL_S} s) not checked: bursts of {args.concurrency}")
    for name in ("majordome-openai", "majordome-azure"):
        if name in by_name and args.concurrency == TARGET_REQUESTS:
            r = by_name[name]
            targets[name] = {
                "warm_met": r["warm_wall_median_s"] <= TARGET_WALL_S,
                "cold_met": r["cold"]["wall_s"] <= TARGET_WALL_S,
            }
            print(
                f"target {LABELS[name]}: {args.concurrency} requests in <= {TARGET_WALL_S} s -> warm "
                f"{r['warm_wall_median_s']:.3f} s {'MET' if targets[name]['warm_met'] else 'MISSED'}, cold "
                f"{r['cold']['wall_s']:.3f} s {'MET' if targets[name]['cold_met'] else 'MISSED'}"
            )
    write_json(
        result_name,
        {
            "benchmark": "concurrency",
            "command": command_line(),
            "machine": machine(),
            "concurrency": args.concurrency,
            "warm_bursts": args.bursts,
            "stub_latency_s": args.latency,
            "target_wall_s": TARGET_WALL_S,
            "targets": targets,
            "comparison": comparison,
            "results": results,
        },
    )
    if not args.quick and results:
        _plot(results, args.concurrency, result_name)


if __name__ == "__main__":
    main()
