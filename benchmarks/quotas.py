"""Client-side throttling against a provider that enforces its quota: 4 worker processes send
to two deployments as fast as they can, each call first acquiring from one shared
``RedisThrottle``; the stub model server answers 429 + Retry-After beyond each deployment's
quota. Then the same without throttling.

The stub (an aiohttp app in its own process) enforces, per deployment, a *sliding* window: at
most ``--rpm`` requests and ``--tpm`` tokens (prompt + completion) in any ``--window`` seconds.
Quotas are scaled to a 10 s window by default (100 requests and 100,000 tokens per 10 s rather
than per minute), so a 60 s run spans six windows. Each call sends U(200, 1200) prompt tokens
with max_tokens=800; the stub answers U(0.3, 1.0) x 800 completion tokens after 20 ms. The
throttle takes prompt + max_tokens before the call and settles to the usage after (so tokens
bind: about 1,220 tokens a call, i.e. 82 calls a window at 100,000 tokens). Every worker task
that gets a 429 sleeps the Retry-After (what ``ResilientModel`` does), throttled or not.

    python benchmarks/quotas.py                  # needs MAJORDOME_TEST_REDIS_URL (scripts/services.sh up)
    python benchmarks/quotas.py --seconds 90 --burst 0.05

Reported per mode: calls answered and refused (429 rate, target <= 1 % throttled), and the
throughput as a share of the quota on the binding dimension (target within 10 %): what the stub
answered, over the quota's sustained rate (per window) times the span from the first answered
call to the last.

``quotas_majordome.py`` runs the same load test through ``Majordome.ask`` (the library's own
throttle, router and retries) against a stub that speaks the provider's wire format.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import random
import sys
import time
import uuid
from typing import Any

from _common import command_line, machine, print_table, write_json

from majordome.quotas import Acquired, DeploymentQuota, QuotaExhausted, RedisThrottle

DEPLOYMENTS = ("gpt-a", "gpt-b")
PROMPT = (200, 1200)
MAX_TOKENS = 800


# -- the stub provider -------------------------------------------------------------------------


class SlidingWindow:
    """What the stub enforces, per deployment: at most ``rpm`` requests and ``tpm`` tokens
    (prompt + completion) in any ``window`` seconds. Also used by ``quotas_majordome.py``."""

    def __init__(self, rpm: int, tpm: int, window: float) -> None:
        self.rpm, self.tpm, self.window = rpm, tpm, window
        self.log: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(collections.deque)
        self.tokens_in_window: dict[str, int] = collections.defaultdict(int)

    def admit(self, name: str, used: int, now: float) -> float | None:
        """None when a call using ``used`` tokens fits now (it is recorded); else the seconds until
        enough of the window will have slid past for it to fit (the Retry-After)."""
        entries = self.log[name]
        while entries and entries[0][0] <= now - self.window:
            self.tokens_in_window[name] -= entries.popleft()[1]
        if len(entries) + 1 > self.rpm or self.tokens_in_window[name] + used > self.tpm:
            need_req, need_tok, at = len(entries) + 1 - self.rpm, self.tokens_in_window[name] + used - self.tpm, now
            for when, tokens in entries:
                need_req, need_tok, at = need_req - 1, need_tok - tokens, when + self.window
                if need_req <= 0 and need_tok <= 0:
                    break
            return max(at - now, 0.001)
        entries.append((now, used))
        self.tokens_in_window[name] += used
        return None

    def reset(self) -> None:
        self.log.clear()
        self.tokens_in_window.clear()


def serve(port_queue: Any, rpm: int, tpm: int, window: float, latency: float) -> None:
    from aiohttp import web

    quota = SlidingWindow(rpm, tpm, window)
    stats: dict[str, dict[str, Any]] = {d: {"ok": 0, "refused": 0, "tokens": 0} for d in DEPLOYMENTS}
    span = {"first": 0.0, "last": 0.0}
    rng = random.Random(7)

    async def chat(request: web.Request) -> web.Response:
        name = request.match_info["deployment"]
        body = await request.json()
        completion = int(MAX_TOKENS * rng.uniform(0.3, 1.0))
        used = int(body["prompt_tokens"]) + completion
        now = time.monotonic()
        retry_after = quota.admit(name, used, now)
        if retry_after is not None:
            stats[name]["refused"] += 1
            return web.json_response(
                {"error": "rate limited"}, status=429, headers={"Retry-After": f"{retry_after:.3f}"}
            )
        span["first"] = span["first"] or now
        span["last"] = now
        stats[name]["ok"] += 1
        stats[name]["tokens"] += used
        await asyncio.sleep(latency)
        return web.json_response({"usage": {"prompt_tokens": body["prompt_tokens"], "completion_tokens": completion}})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response({"deployments": stats, "span_s": span["last"] - span["first"]})

    async def reset(request: web.Request) -> web.Response:
        quota.reset()
        for d in DEPLOYMENTS:
            stats[d] = {"ok": 0, "refused": 0, "tokens": 0}
        span.update(first=0.0, last=0.0)
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{deployment}/chat", chat)
        app.router.add_get("/stats", get_stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the workers ---------------------------------------------------------------------------------


def work(args: dict[str, Any], out: Any) -> None:
    out.put(asyncio.run(_work(**args)))


async def _work(
    *,
    base: str,
    redis_url: str,
    prefix: str,
    throttled: bool,
    start: float,
    seconds: float,
    tasks: int,
    rpm: int,
    tpm: int,
    window: float,
    burst: float,
    seed: int,
) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(seed)
    quota = DeploymentQuota(rpm=rpm, tpm=tpm, burst=burst)
    throttle = RedisThrottle(dict.fromkeys(DEPLOYMENTS, quota), url=redis_url, prefix=prefix, window_s=window)
    counts = {"ok": 0, "refused": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.sleep(max(0.0, start - time.time()))  # every worker starts together
        end = time.monotonic() + seconds

        async def task() -> None:
            while time.monotonic() < end:
                deployment = rng.choice(DEPLOYMENTS)
                prompt = rng.randint(*PROMPT)
                estimate = prompt + MAX_TOKENS
                if throttled:
                    try:
                        grant = await throttle.acquire(deployment, estimate, deadline=end)
                    except QuotaExhausted:
                        return
                    assert isinstance(grant, Acquired)
                async with session.post(
                    f"{base}/{deployment}/chat", json={"prompt_tokens": prompt, "max_tokens": MAX_TOKENS}
                ) as response:
                    body = await response.json()
                    if response.status == 429:
                        counts["refused"] += 1
                        if throttled:
                            await throttle.adjust(deployment, -estimate)  # nothing was used
                        await asyncio.sleep(float(response.headers["Retry-After"]))
                        continue
                counts["ok"] += 1
                if throttled:
                    usage = body["usage"]
                    await throttle.adjust(deployment, usage["prompt_tokens"] + usage["completion_tokens"] - estimate)

        await asyncio.gather(*(task() for _ in range(tasks)))
    await throttle.aclose()
    return counts


# -- the run --------------------------------------------------------------------------------------


def run_mode(ctx: Any, base: str, throttled: bool, opts: argparse.Namespace) -> dict[str, Any]:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{base}/reset", method="POST")).read()
    out = ctx.Queue()
    start = time.time() + 8.0  # time for every worker to start (imports) before the common start
    prefix = f"majordome-bench-quotas:{uuid.uuid4().hex[:12]}:"
    procs = []
    for i in range(opts.workers):
        args = {
            "base": base,
            "redis_url": opts.redis,
            "prefix": prefix,
            "throttled": throttled,
            "start": start,
            "seconds": opts.seconds,
            "tasks": opts.tasks,
            "rpm": opts.rpm,
            "tpm": opts.tpm,
            "window": opts.window,
            "burst": opts.burst,
            "seed": i,
        }
        p = ctx.Process(target=work, args=(args, out))
        p.start()
        procs.append(p)
    results = [out.get(timeout=opts.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    import json

    report = json.loads(urllib.request.urlopen(f"{base}/stats").read())
    server = report["deployments"]
    ok = sum(s["ok"] for s in server.values())
    refused = sum(s["refused"] for s in server.values())
    tokens = sum(s["tokens"] for s in server.values())
    # the quota's sustained rate over the span from the first call answered to the last
    windows = report["span_s"] / opts.window * len(DEPLOYMENTS)
    req_share, tok_share = ok / (windows * opts.rpm), tokens / (windows * opts.tpm)
    return {
        "mode": f"throttled (burst {opts.burst:g})" if throttled else "no throttle",
        "answered": ok,
        "refused_429": refused,
        "rate_429": refused / max(ok + refused, 1),
        "requests_share_of_quota": req_share,
        "tokens_share_of_quota": tok_share,
        "binding_share_of_quota": max(req_share, tok_share),
        "span_s": report["span_s"],
        "workers_counted": {k: sum(r[k] for r in results) for k in ("ok", "refused")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("MAJORDOME_TEST_REDIS_URL"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=10.0, help="the quota window (a minute, scaled down)")
    parser.add_argument("--rpm", type=int, default=100, help="requests per window per deployment")
    parser.add_argument("--tpm", type=int, default=100_000, help="tokens per window per deployment")
    parser.add_argument("--burst", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=16, help="concurrent calls per worker")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--modes", default="throttled,off")
    parser.add_argument("--out", default="quotas", help="results go to benchmarks/results/<out>.json")
    opts = parser.parse_args()
    if not opts.redis:
        sys.exit("set MAJORDOME_TEST_REDIS_URL or pass --redis (scripts/services.sh up)")
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=serve, args=(ports, opts.rpm, opts.tpm, opts.window, opts.latency), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    try:
        rows = [run_mode(ctx, base, mode == "throttled", opts) for mode in opts.modes.split(",")]
    finally:
        server.terminate()
        server.join()
    print_table(
        f"{opts.workers} processes x {opts.tasks} tasks, {len(DEPLOYMENTS)} deployments, {opts.seconds:g} s, "
        f"quota {opts.rpm} requests and {opts.tpm} tokens per {opts.window:g} s each",
        ["mode", "answered", "429", "429 rate", "requests / quota", "tokens / quota"],
        [
            [
                r["mode"],
                r["answered"],
                r["refused_429"],
                f"{100 * r['rate_429']:.2f} %",
                f"{100 * r['requests_share_of_quota']:.1f} %",
                f"{100 * r['tokens_share_of_quota']:.1f} %",
            ]
            for r in rows
        ],
    )
    write_json(
        opts.out,
        {"command": command_line(), "options": vars(opts) | {"redis": "(set)"}, "results": rows, "machine": machine()},
    )


if __name__ == "__main__":
    main()
