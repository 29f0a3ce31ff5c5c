"""Deployment quotas through the library's own request path: 4 worker processes, each with its
own ``Majordome`` built from configuration, call ``await mj.ask(...)`` as fast as they can
against a stub provider that enforces each deployment's quota and answers 429 + Retry-After
beyond it. With throttling on, the throttle is the Majordome's own (``deployment_quotas``,
``redis_url`` for buckets shared by the processes, ``quota_window_s``); off, there is none.

The stub (an aiohttp app in its own process) speaks the catalogue's wire format (Azure AI
Inference chat completions, or OpenAI's with ``--api openai``: the same JSON) and enforces per
deployment the sliding window of ``quotas.py``: at most ``--rpm`` requests and ``--tpm`` tokens
(prompt + completion) in any ``--window`` seconds. It reports as usage the prompt's tokens
counted from the request (cl100k, with chat framing: what the client estimates too) and
U(0.3, 1.0) x max_tokens completion tokens, after ``--latency``. Quotas are scaled to a 10 s
window by default (100 requests and 100,000 tokens per 10 s rather than per minute).

Requests: a new text of U(200, 1200) tokens each, ``max_output_tokens=800``, ``deadline_s=30``,
intent and language given (no classification). Two scenarios:

* ``pinned``: every request pins ``--pin`` (one deployment, no fallback): the issue's
  "throughput within 10 % of the quota" case.
* ``routed``: no pin; the router chooses among ``--routed`` (every one with a quota) and the
  fallback chain hands over: does the load spread instead of queueing into 429s? A call the
  throttle cannot admit within its wait fails its attempt with ``DeploymentAtQuota`` (no request
  sent); a 429 whose Retry-After is over ``hand_over_after_s`` (1 s) hands over to the next
  candidate, and the router avoids that deployment until its Retry-After has passed.

    python benchmarks/quotas_majordome.py        # needs MAJORDOME_TEST_REDIS_URL (scripts/services.sh up)
    python benchmarks/quotas_majordome.py --scenarios pinned --modes throttled --seconds 30

Reported per scenario and mode: the 429s the stub sent (rate, target <= 1 % throttled), calls it
answered, errors raised to the callers by type, and the throughput as a share of the quota on the
binding dimension (target within 10 %): what the stub answered over the quota's sustained rate
(per window, per deployment) times the span from the first answered call to the last (the
definition of ``quotas.py``). In-flight calls are cancelled when the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from _common import CHAT_SLOTS, NON_CHAT_SLOTS, command_line, machine, print_table, summary_ms, write_json
from quotas import SlidingWindow

PROMPT = (200, 1200)
MAX_TOKENS = 800
DEADLINE_S = 30.0
KEY_ENV = "BENCH_QUOTAS_FAKE_KEY"
WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up "
    "other about out many then them these so some her would make like him into time has look two more write "
    "go see number no way could people my than first water been call who oil its now find long down day did "
    "get come made may part over new sound take only little work know place year live me back give most very "
    "after thing our just name good sentence man think say great where help through much before line right "
    "too mean old any same tell boy follow came want show also around form three small set put end does"
).split()


# -- the stub provider -------------------------------------------------------------------------


def serve(port_queue: Any, rpm: int, tpm: int, window: float, latency: float) -> None:
    from aiohttp import web

    from majordome.models.messages import Message
    from majordome.models.tokens import estimate_prompt_tokens

    quota = SlidingWindow(rpm, tpm, window)
    stats: dict[str, dict[str, Any]] = {}
    span = {"first": 0.0, "last": 0.0}
    rng = random.Random(7)

    def fresh() -> dict[str, Any]:
        return {"ok": 0, "refused": 0, "tokens": 0, "first": 0.0, "last": 0.0, "answered_at": [], "refused_at": []}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        name = str(body["model"])  # the deployment
        prompt = estimate_prompt_tokens([Message(role=m["role"], content=m["content"]) for m in body["messages"]])
        max_tokens = int(body.get("max_tokens") or MAX_TOKENS)
        completion = int(max_tokens * rng.uniform(0.3, 1.0))
        now = time.monotonic()
        mine = stats.setdefault(name, fresh())
        retry_after = quota.admit(name, prompt + completion, now)
        if retry_after is not None:
            mine["refused"] += 1
            mine["refused_at"].append(now)
            message = f"Rate limit of {name} exceeded. Please retry after {retry_after:.3f} seconds."
            return web.json_response(
                {"error": {"code": "429", "message": message}},
                status=429,
                headers={"Retry-After": f"{retry_after:.3f}", "retry-after-ms": f"{retry_after * 1000:.0f}"},
            )
        span["first"] = span["first"] or now
        span["last"] = now
        mine["first"] = mine["first"] or now
        mine["last"] = now
        mine["ok"] += 1
        mine["tokens"] += prompt + completion
        mine["answered_at"].append((now, prompt + completion))
        await asyncio.sleep(latency)
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "An answer."}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    async def get_stats(request: web.Request) -> web.Response:
        # times relative to the first call answered (on any deployment)
        for mine in stats.values():
            mine["answered_at"] = [(round(t - span["first"], 4), n) for t, n in mine["answered_at"]]
            mine["refused_at"] = [round(t - span["first"], 4) for t in mine["refused_at"]]
        return web.json_response({"deployments": stats, "span_s": span["last"] - span["first"]})

    async def reset(request: web.Request) -> web.Response:
        quota.reset()
        stats.clear()
        span.update(first=0.0, last=0.0)
        return web.json_response({})

    async def main() -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/models/chat/completions", chat)  # Azure AI Inference (?api-version=...)
        app.router.add_post("/v1/chat/completions", chat)  # OpenAI
        app.router.add_get("/stats", get_stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the catalogue every worker loads ----------------------------------------------------------


def write_catalogue(path: Path, base: str, api: str, models: list[str], tag: str) -> dict[str, str]:
    """A catalogue file pointing ``models`` at the stub (deployment names unique to this run, so
    no quota bucket left in Redis by an earlier run or by anyone else is shared), every other
    slot disabled. Returns {model id: deployment}."""
    entries: dict[str, dict[str, Any]] = {m: {"enabled": False} for m in (*CHAT_SLOTS, *NON_CHAT_SLOTS)}
    deployments = {}
    for model_id in models:
        deployments[model_id] = f"bench-{tag}-{model_id}"
        entries[model_id] = {
            "enabled": True,
            "api": api,
            "deployment": deployments[model_id],
            "endpoint": f"{base}/models" if api == "azure-ai-inference" else f"{base}/v1",
            "api_key_env": KEY_ENV,
            "auth": "key",
        }
    path.write_text(json.dumps({"models": entries}, indent=1))
    return deployments


# -- the workers ---------------------------------------------------------------------------------


def work(args: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    out.put(asyncio.run(_work(ready=ready, go=go, **args)))


def _prompt(rng: random.Random, worker: int, n: int) -> str:
    size = rng.randint(*PROMPT)
    words = rng.choices(WORDS, k=size - 12)  # about one token a word, less the framing and the header
    return f"Request {worker}-{n}: " + " ".join(words)


def _instrument(throttle: Any, counts: dict[str, dict[str, float]]) -> None:
    """Count, per deployment, what the Majordome's throttle did: grants, hand-overs (the quota
    could not admit the call within ``quota_wait_s``: ``Throttle.acquire`` raises
    ``QuotaExhausted``, the attempt fails with ``DeploymentAtQuota`` and the next candidate is
    tried) and the time spent waiting. Wraps the instance's method; nothing in the library
    changes."""
    from majordome.quotas import QuotaExhausted

    original = throttle.acquire

    async def acquire(deployment: str, tokens: int, deadline: float) -> Any:
        started = time.monotonic()
        mine = counts.setdefault(deployment, {"granted": 0, "handed_over": 0, "wait_s": 0.0, "refused_wait_s": 0.0})
        try:
            grant = await original(deployment, tokens, deadline)
        except QuotaExhausted:
            mine["handed_over"] += 1
            mine["refused_wait_s"] += time.monotonic() - started
            raise
        mine["granted"] += 1
        mine["wait_s"] += time.monotonic() - started
        return grant

    throttle.acquire = acquire


async def _work(
    *,
    ready: Any,
    go: Any,
    worker: int,
    catalogue: str,
    redis_url: str,
    throttled: bool,
    quotas: dict[str, dict[str, int]],
    window: float,
    seconds: float,
    tasks: int,
    pin: str | None,
) -> dict[str, Any]:
    import logging

    from majordome import DeploymentAtQuota, Majordome, MajordomeConfig, ProviderRateLimited
    from majordome._errors import MajordomeError

    logging.getLogger("majordome").setLevel(logging.ERROR)  # a warning per failed request otherwise
    config = MajordomeConfig(
        catalogue_file=Path(catalogue),
        offline="never",
        deployment_quotas=quotas if throttled else {},
        redis_url=redis_url if throttled else None,
        quota_window_s=window,
    )
    mj = Majordome(config, env={KEY_ENV: "fake-benchmark-key"})
    throttle_counts: dict[str, dict[str, float]] = {}
    if mj.throttle is not None:
        _instrument(mj.throttle, throttle_counts)
    rng = random.Random(worker)
    base_request: dict[str, Any] = {
        "tenant": f"bench-{worker}",
        "intent": "general_help",
        "language": "en",
        "max_output_tokens": MAX_TOKENS,
        "deadline_s": DEADLINE_S,
    }
    if pin is not None:
        base_request["model"] = pin
    # routing once before the start: imports, tokenizer, router tables (no model is called)
    decision = mj.route({**base_request, "messages": [{"role": "user", "content": _prompt(rng, worker, -1)}]})
    answered_by: collections.Counter[str] = collections.Counter()
    chosen: collections.Counter[str] = collections.Counter()  # the router's first choice, of the answered
    attempts: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    causes: collections.Counter[str] = collections.Counter()
    # answers after a 429: from another model (handed over) or from the same one (Retry-After waited out)
    after_429: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    failed_sent_at: list[float] = []  # when each call that failed was sent, from the common start
    slow: list[dict[str, Any]] = []  # a few answers slower than 3 s, with their attempts
    ready.put(worker)
    await asyncio.to_thread(go.wait)
    begin = time.monotonic()
    end = begin + seconds
    sent = decided_to_wait = 0

    async def task() -> None:
        nonlocal sent, decided_to_wait
        while time.monotonic() < end:
            sent += 1
            request = {**base_request, "messages": [{"role": "user", "content": _prompt(rng, worker, sent)}]}
            started = time.monotonic()
            try:
                answer = await mj.ask(request)
            except MajordomeError as error:
                origin = error.__cause__
                named = type(error).__name__
                if isinstance(origin, MajordomeError) and hasattr(origin, "causes"):
                    named += f" (from {type(origin).__name__})"  # e.g. QuotaExhausted from DeadlineExceeded
                errors[named] += 1
                failed_sent_at.append(round(started - begin, 3))
                # QuotaExhausted (every candidate at its quota) is raised from the AllCandidatesFailed;
                # a cause DeploymentAtQuota is the throttle's hand-over (no call), ProviderRateLimited a 429
                chained = error if hasattr(error, "causes") else error.__cause__
                for model_id, cause in getattr(chained, "causes", ()):
                    causes[f"{model_id}: {type(cause).__name__}"] += 1
                continue
            latencies.append(time.monotonic() - started)
            if latencies[-1] > 3.0 and len(slow) < 5:
                slow.append(
                    {
                        "latency_s": round(latencies[-1], 2),
                        "chain": list(answer.decision.chain),
                        "attempts": [(a.model, a.outcome, round(a.latency_ms)) for a in answer.attempts],
                    }
                )
            answered_by[answer.model] += 1
            chosen[answer.decision.chosen] += 1
            if getattr(answer.decision, "quota_wait_s", 0.0) > 0:  # the router saw every candidate at its quota
                decided_to_wait += 1
            for attempt in answer.attempts:
                attempts[f"{attempt.model}: {attempt.outcome}"] += 1
            limited = [a.model for a in answer.attempts if a.outcome == ProviderRateLimited.__name__]
            if limited:
                after_429["handed over" if limited[-1] != answer.model else "same model"] += 1
            if any(a.outcome == DeploymentAtQuota.__name__ for a in answer.attempts):
                after_429["after a quota hand-over"] += 1

    running = [asyncio.ensure_future(task()) for _ in range(tasks)]
    done, pending = await asyncio.wait(running, timeout=max(0.0, end - time.monotonic()))
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for t in done:
        t.result()  # a bug in the loop itself surfaces here
    await mj.aclose()
    return {
        "worker": worker,
        "chain": list(decision.chain),
        "sent": sent,
        "answered_by": dict(answered_by),
        "chosen": dict(chosen),
        "decided_to_wait": decided_to_wait,
        "errors": dict(errors),
        "causes": dict(causes),
        "attempts_of_answers": dict(attempts),
        "answers_after_429": dict(after_429),
        "cancelled_at_end": len(pending),
        "latencies_s": latencies,
        "failed_sent_at_s": failed_sent_at,
        "slow_answers": slow,
        "throttle": throttle_counts,
    }


# -- the run --------------------------------------------------------------------------------------


def _merge(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    total: collections.Counter[str] = collections.Counter()
    for d in dicts:
        total.update(d)
    return dict(sorted(total.items()))


def run_one(
    ctx: Any, base: str, scenario: str, throttled: bool, opts: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    models = [opts.pin] if scenario == "pinned" else opts.routed.split(",")
    tag = uuid.uuid4().hex[:8]
    catalogue = workdir / f"catalogue-{tag}.json"
    deployments = write_catalogue(catalogue, base, opts.api, models, tag)
    quotas = {m: {"rpm": opts.rpm, "tpm": opts.tpm} for m in models}
    urllib.request.urlopen(urllib.request.Request(f"{base}/reset", method="POST")).read()
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = []
    for i in range(opts.workers):
        args = {
            "worker": i,
            "catalogue": str(catalogue),
            "redis_url": opts.redis,
            "throttled": throttled,
            "quotas": quotas,
            "window": opts.window,
            "seconds": opts.seconds,
            "tasks": opts.tasks,
            "pin": opts.pin if scenario == "pinned" else None,
        }
        p = ctx.Process(target=work, args=(args, ready, go, out))
        p.start()
        procs.append(p)
    for _ in procs:  # every worker has built its Majordome before the common start
        ready.get(timeout=180)
    go.set()
    results = [out.get(timeout=opts.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    report = json.loads(urllib.request.urlopen(f"{base}/stats").read())
    return summarise(scenario, throttled, opts, models, deployments, report, results)


def summarise(
    scenario: str,
    throttled: bool,
    opts: argparse.Namespace,
    models: list[str],
    deployments: dict[str, str],
    report: dict[str, Any],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    server = report["deployments"]
    span = report["span_s"]
    empty = {"ok": 0, "refused": 0, "tokens": 0, "first": 0.0, "last": 0.0}
    throttle = {d: _merge([r["throttle"].get(d, {}) for r in results]) for d in deployments.values()}
    per_deployment = []
    for model_id in models:
        name = deployments[model_id]
        s = server.get(name, empty)
        windows = span / opts.window
        req_share = s["ok"] / (windows * opts.rpm) if windows else 0.0
        tok_share = s["tokens"] / (windows * opts.tpm) if windows else 0.0
        t = throttle.get(name, {})
        per_window = _per_window(s, span, opts.window)
        per_deployment.append(
            {
                "model": model_id,
                "deployment": name,
                "answered": s["ok"],
                "tokens": s["tokens"],
                "refused_429": s["refused"],
                "rate_429": s["refused"] / max(s["ok"] + s["refused"], 1),
                "requests_share_of_quota": req_share,
                "tokens_share_of_quota": tok_share,
                "binding_share_of_quota": max(req_share, tok_share),
                "span_s": s["last"] - s["first"],
                "quota_grants": int(t.get("granted", 0)),
                "quota_hand_overs": int(t.get("handed_over", 0)),
                "quota_wait_s_per_grant": t.get("wait_s", 0.0) / max(t.get("granted", 0), 1),
                "quota_wait_s_per_hand_over": t.get("refused_wait_s", 0.0) / max(t.get("handed_over", 0), 1),
                "first_429s_at_s": s.get("refused_at", [])[:20],
                "per_window": per_window,
            }
        )
    ok = sum(d["answered"] for d in per_deployment)
    refused = sum(d["refused_429"] for d in per_deployment)
    tokens = sum(d["tokens"] for d in per_deployment)
    windows = span / opts.window * len(models)
    req_share = ok / (windows * opts.rpm) if windows else 0.0
    tok_share = tokens / (windows * opts.tpm) if windows else 0.0
    latencies = [x for r in results for x in r["latencies_s"]]
    row = {
        "scenario": scenario,
        "mode": "throttled" if throttled else "no throttle",
        "models": models,
        "chains_seen": sorted({" -> ".join(r["chain"]) for r in results}),
        "answered": ok,
        "refused_429": refused,
        "rate_429": refused / max(ok + refused, 1),
        "requests_share_of_quota": req_share,
        "tokens_share_of_quota": tok_share,
        "binding_share_of_quota": max(req_share, tok_share),
        "span_s": span,
        "callers": {
            "sent": sum(r["sent"] for r in results),
            "answered": sum(sum(r["answered_by"].values()) for r in results),
            "answered_by": _merge([r["answered_by"] for r in results]),
            "router_chose": _merge([r["chosen"] for r in results]),
            "answered_after_router_saw_all_at_quota": sum(r["decided_to_wait"] for r in results),
            "errors": _merge([r["errors"] for r in results]),
            "error_causes": _merge([r["causes"] for r in results]),
            # failed calls by the --window (from the common start) in which they were sent
            "errors_by_window_sent": _by_window([t for r in results for t in r["failed_sent_at_s"]], opts.window),
            "attempts_of_answers": _merge([r["attempts_of_answers"] for r in results]),
            "answers_after_429_or_quota_hand_over": _merge([r["answers_after_429"] for r in results]),
            "cancelled_at_end": sum(r["cancelled_at_end"] for r in results),
            "latency": summary_ms(latencies),
            "slow_answers_sample": [x for r in results for x in r["slow_answers"]][:10],
        },
        "deployments": per_deployment,
    }
    row["tokens_share_after_first_window"] = _steady_share(row, opts)
    return row


def _per_window(s: dict[str, Any], span: float, window: float) -> list[dict[str, int]]:
    """Answered calls, their tokens and 429s in each window from the first call answered."""
    count = max(1, int(span // window) + 1)
    rows = [{"answered": 0, "tokens": 0, "refused_429": 0} for _ in range(count)]
    for at, tokens in s.get("answered_at", []):
        row = rows[min(count - 1, max(0, int(at // window)))]
        row["answered"] += 1
        row["tokens"] += tokens
    for at in s.get("refused_at", []):
        rows[min(count - 1, max(0, int(at // window)))]["refused_429"] += 1
    return rows


def _by_window(times: list[float], window: float) -> list[int]:
    counts = [0] * (int(max(times, default=0.0) // window) + 1)
    for t in times:
        counts[int(t // window)] += 1
    return counts


def _steady_share(r: dict[str, Any], opts: argparse.Namespace) -> float:
    """Tokens answered in the whole windows after the first, as a share of the quota (the first
    window holds the buckets' initial burst; the last is cut short)."""
    windows = [d["per_window"] for d in r["deployments"]]
    full = min(len(w) for w in windows) - 1  # windows 1 .. full-1 are whole
    if full < 2:
        return math.nan
    tokens = sum(w[k]["tokens"] for w in windows for k in range(1, full))
    return tokens / ((full - 1) * opts.tpm * len(windows))


def _errors_cell(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in errors.items()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("MAJORDOME_TEST_REDIS_URL"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=10.0, help="the quota window (a minute, scaled down)")
    parser.add_argument("--rpm", type=int, default=100, help="requests per window per deployment")
    parser.add_argument("--tpm", type=int, default=100_000, help="tokens per window per deployment")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=16, help="concurrent asks per worker")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--api", choices=("azure-ai-inference", "openai"), default="azure-ai-inference")
    parser.add_argument("--pin", default="deepseek-v3", help="the model the pinned scenario pins")
    parser.add_argument("--routed", default="deepseek-v3,mistral-large,llama-3.3-70b", help="the routed models")
    parser.add_argument("--scenarios", default="pinned,routed")
    parser.add_argument("--modes", default="throttled,off")
    parser.add_argument("--out", default="quotas_majordome", help="results go to benchmarks/results/<out>.json")
    opts = parser.parse_args()
    if not opts.redis:
        sys.exit("set MAJORDOME_TEST_REDIS_URL or pass --redis (scripts/services.sh up)")
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=serve, args=(ports, opts.rpm, opts.tpm, opts.window, opts.latency), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="majordome-bench-quotas-") as workdir:
            for scenario in opts.scenarios.split(","):
                for mode in opts.modes.split(","):
                    row = run_one(ctx, base, scenario, mode == "throttled", opts, Path(workdir))
                    rows.append(row)
                    print(f"{scenario}, {row['mode']}: {json.dumps({k: row[k] for k in ('answered', 'refused_429')})}")
    finally:
        server.terminate()
        server.join()
    title = (
        f"Majordome.ask in {opts.workers} processes x {opts.tasks} tasks, {opts.seconds:g} s, api {opts.api}; "
        f"quota {opts.rpm} requests and {opts.tpm} tokens per {opts.window:g} s per deployment"
    )
    print_table(
        title,
        [
            "scenario",
            "mode",
            "answered",
            "429",
            "429 rate",
            "requests / quota",
            "tokens / quota",
            "tokens / quota after 1st window",
            "errors to callers",
        ],
        [
            [
                r["scenario"],
                r["mode"],
                r["answered"],
                r["refused_429"],
                f"{100 * r['rate_429']:.2f} %",
                f"{100 * r['requests_share_of_quota']:.1f} %",
                f"{100 * r['tokens_share_of_quota']:.1f} %",
                f"{100 * r['tokens_share_after_first_window']:.1f} %",
                _errors_cell(r["callers"]["errors"]),
            ]
            for r in rows
        ],
    )
    print_table(
        "Per deployment (shares over the run's span; hand-over: the throttle could not admit the call within its "
        "wait, quota_wait_s = 2 s, or the deadline when the router saw every candidate at its quota)",
        [
            "scenario",
            "mode",
            "model",
            "answered",
            "429",
            "429 rate",
            "tokens / quota",
            "quota hand-overs",
            "wait / hand-over",
            "quota wait / grant",
        ],
        [
            [
                r["scenario"],
                r["mode"],
                d["model"],
                d["answered"],
                d["refused_429"],
                f"{100 * d['rate_429']:.2f} %",
                f"{100 * d['tokens_share_of_quota']:.1f} %",
                d["quota_hand_overs"],
                f"{d['quota_wait_s_per_hand_over']:.2f} s",
                f"{d['quota_wait_s_per_grant']:.2f} s",
            ]
            for r in rows
            for d in r["deployments"]
        ],
    )
    print_table(
        "Callers",
        [
            "scenario",
            "mode",
            "sent",
            "answered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "waited (router: all at quota)",
            "cancelled at end",
            "error causes",
        ],
        [
            [
                r["scenario"],
                r["mode"],
                r["callers"]["sent"],
                r["callers"]["answered"],
                f"{r['callers']['latency'].get('p50_ms', float('nan')):.0f}",
                f"{r['callers']['latency'].get('p90_ms', float('nan')):.0f}",
                f"{r['callers']['latency'].get('p99_ms', float('nan')):.0f}",
                r["callers"]["answered_after_router_saw_all_at_quota"],
                r["callers"]["cancelled_at_end"],
                _errors_cell(r["callers"]["error_causes"]),
            ]
            for r in rows
        ],
    )

    def window_cell(r: dict[str, Any], k: int) -> str:
        deployments = r["deployments"]
        if k >= len(deployments[0]["per_window"]):
            return ""
        tokens = sum(d["per_window"][k]["tokens"] for d in deployments) / (opts.tpm * len(deployments))
        return f"{100 * tokens:.0f} % / {sum(d['per_window'][k]['refused_429'] for d in deployments)}"

    n = max(len(r["deployments"][0]["per_window"]) for r in rows)
    print_table(
        f"Per {opts.window:g} s window from the first answered call: tokens answered (share of the quota) / 429s, "
        "all deployments (the last window is cut short)",
        ["scenario", "mode", *[f"w{k}" for k in range(n)]],
        [[r["scenario"], r["mode"], *[window_cell(r, k) for k in range(n)]] for r in rows],
    )
    with contextlib.suppress(KeyError):
        for r in rows:
            r["callers"]["latency"] = {k: round(v, 1) for k, v in r["callers"]["latency"].items()}
    write_json(
        opts.out,
        {"command": command_line(), "options": vars(opts) | {"redis": "(set)"}, "results": rows, "machine": machine()},
    )


if __name__ == "__main__":
    main()
