"""``majordome serve`` under load: requests/s and latency at 50 and 200 concurrent streams, and
the time-to-first-token the HTTP server adds over calling ``Majordome.stream`` directly.

The model is the loopback stub server (its own process) answering after 50 ms; the API server
runs in another process (``uvicorn``, one worker), and the load comes from one asyncio client
(httpx) in this one, so the three do not share an event loop.

    python benchmarks/server_load.py            # 50 and 200 streams, 2,000 requests each
    python benchmarks/server_load.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from _common import command_line, machine, print_table, slot_env, stub_process, summary_ms, write_json

KEY = "sk-benchmark-server-load"
LATENCY_S = 0.05
BODY: dict[str, Any] = {
    "model": "majordome",
    "messages": [{"role": "user", "content": "Loved your last video, you made my day!"}],
    "stream": True,
    "max_tokens": 32,
}
SLOTS = ("deepseek-v3", "mistral-large")


def _env(stub_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAJORDOME_", "AZURE_"))}
    return {**clean, **slot_env({slot: ("openai", stub_url) for slot in SLOTS})}


def _child(port: int) -> None:
    """The server process: a Majordome on the stub's slots, served with no rate limit."""
    from majordome import Majordome
    from majordome.server import ApiKeys, ServerLimits, serve

    keys = ApiKeys()
    keys.add("bench", KEY)
    serve(Majordome.from_env(), keys, port=port, limits=ServerLimits(requests_per_minute=None), log_level="warning")


@contextlib.contextmanager
def _server(stub_url: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--child", str(port)], env=_env(stub_url))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(30)


async def _one(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    """One streamed completion: (time to the first text, total time)."""
    started = time.perf_counter()
    first = 0.0
    async with client.stream("POST", url, json=BODY, headers={"Authorization": f"Bearer {KEY}"}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if not first and line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - started
            if line == "data: [DONE]":
                break
    return first, time.perf_counter() - started


async def _load(base: str, concurrency: int, total: int) -> dict[str, Any]:
    url = f"{base}/v1/chat/completions"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[tuple[float, float]] = []
    errors = 0
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await asyncio.gather(*(_one(client, url) for _ in range(min(concurrency, 20))))  # warm up
        pending = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for _ in pending:
                try:
                    results.append(await _one(client, url))
                except (RuntimeError, httpx.HTTPError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": errors,
        "requests_per_s": len(results) / wall,
        "ttft": summary_ms([r[0] for r in results]),
        "total": summary_ms([r[1] for r in results]),
    }


async def _direct_ttft(stub_url: str, n: int) -> dict[str, float]:
    from majordome import Majordome, TextDelta

    request = {"messages": BODY["messages"], "tenant": "bench", "max_output_tokens": 32}
    ttfts: list[float] = []
    async with Majordome.from_env(_env(stub_url)) as mj:
        for i in range(n + 10):
            started = time.perf_counter()
            first = 0.0
            async for event in mj.stream(request):
                if not first and isinstance(event, TextDelta) and event.text:
                    first = time.perf_counter() - started
            if i >= 10:  # the first calls open connections and load the tokenizer
                ttfts.append(first)
    return summary_ms(ttfts)


async def _served_ttft(base: str, n: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=60) as client:
        url = f"{base}/v1/chat/completions"
        for _ in range(10):
            await _one(client, url)
        return summary_ms([(await _one(client, url))[0] for _ in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    total = 300 if args.quick else 2000
    sequential = 50 if args.quick else 300
    with stub_process(latency=LATENCY_S) as stub_url, _server(stub_url) as base:
        loads = [asyncio.run(_load(base, c, total)) for c in (50, 200)]
        served = asyncio.run(_served_ttft(base, sequential))
        direct = asyncio.run(_direct_ttft(stub_url, sequential))
    print_table(
        f"majordome serve, streamed completions, model answering in {LATENCY_S * 1000:.0f} ms",
        [
            "concurrent streams",
            "requests",
            "errors",
            "req/s",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "total p50 ms",
            "total p99 ms",
        ],
        [
            [
                r["concurrency"],
                r["requests"],
                r["errors"],
                r["requests_per_s"],
                r["ttft"]["p50_ms"],
                r["ttft"]["p99_ms"],
                r["total"]["p50_ms"],
                r["total"]["p99_ms"],
            ]
            for r in loads
        ],
    )
    print_table(
        "time to first token, one request at a time",
        ["path", "n", "p50 ms", "p99 ms"],
        [
            ["Majordome.stream (in process)", direct["n"], direct["p50_ms"], direct["p99_ms"]],
            ["HTTP server (SSE)", served["n"], served["p50_ms"], served["p99_ms"]],
            ["overhead", "", served["p50_ms"] - direct["p50_ms"], served["p99_ms"] - direct["p99_ms"]],
        ],
    )
    write_json(
        "server_load",
        {
            "command": command_line(),
            "machine": machine(),
            "model_latency_s": LATENCY_S,
            "load": loads,
            "ttft_direct": direct,
            "ttft_served": served,
            "ttft_overhead_p50_ms": served["p50_ms"] - direct["p50_ms"],
        },
    )


if __name__ == "__main__":
    main()
