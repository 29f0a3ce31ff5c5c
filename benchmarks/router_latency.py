"""Decision latency of the router: understanding a request and ranking the candidates.

Three paths, each over many distinct prompts (no cache can help):

- ``classified``: a ~200-token prompt with no hints: static embedding, n-gram features, intent
  classification, language detection, candidate filtering and scoring (the default path);
- ``classified, short``: the same for short messages (~20 tokens), the common case for fan chat;
- ``hinted``: intent and language given by the worker: no embedding, no classification.

For comparison, the transformer the static table is distilled from (all-MiniLM-L6-v2) embedding
the same 200-token prompts: what the embedding alone would cost on the request path.

    python benchmarks/router_latency.py            # 2,000 decisions per path
    python benchmarks/router_latency.py --quick    # 300

Targets: classified p50 <= 5 ms and p99 <= 15 ms; hinted <= 0.1 ms.
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from _common import command_line, machine, print_table, summary_ms, write_json

from majordome.knowledge.embeddings import SentenceTransformerEmbedder
from majordome.models.catalogue import Catalogue
from majordome.models.messages import Message
from majordome.router import Router

WORDS = (
    "fans love short funny videos about fitness food travel fashion and behind the scenes moments so please "
    "give me ideas captions and replies for my next posts stories reels and messages this week with prices "
    "bundles tips and a plan to grow subscribers by ten percent while keeping engagement high and churn low "
    "je voudrais aussi des idées en français pour mes abonnés qui aiment les lives et les coulisses"
).split()


def prompt(rng: random.Random, tokens: int) -> str:
    # about 1.2 tokens per word in cl100k for this vocabulary
    return " ".join(rng.choice(WORDS) for _ in range(int(tokens / 1.2)))


def timed(run: object, items: list[object]) -> list[float]:
    samples = []
    gc.collect()
    for item in items:
        started = time.perf_counter()
        run(item)  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    rng = random.Random(1)
    specs = {k: v for k, v in Catalogue.default().items() if v.kind == "chat"}
    started = time.perf_counter()
    router = Router(models=list(specs))
    load_s = time.perf_counter() - started

    long_prompts = [[Message(role="user", content=prompt(rng, 200))] for _ in range(n)]
    short_prompts = [[Message(role="user", content=prompt(rng, 20))] for _ in range(n)]

    def classified(messages: list[Message]) -> None:
        router.decide(router.features(messages, tenant="t"), specs, tenant="t")

    def hinted(messages: list[Message]) -> None:
        router.decide(router.features(messages, tenant="t", intent="fan_reply", language="en"), specs, tenant="t")

    for warm in long_prompts[:50]:
        classified(warm)
        hinted(warm)
    rows = []
    results: dict[str, dict[str, float]] = {}
    for name, run, items in (
        ("classified, ~200 tokens", classified, long_prompts),
        ("classified, ~20 tokens", classified, short_prompts),
        ("hinted (intent + language), ~200 tokens", hinted, long_prompts),
    ):
        stats = summary_ms(timed(run, items))  # type: ignore[arg-type]
        results[name] = stats
        rows.append([name, n, stats["p50_ms"], stats["p90_ms"], stats["p99_ms"], stats["max_ms"]])

    transformer = SentenceTransformerEmbedder()
    transformer.embed(["warm up"])
    sample = [m[0].text for m in long_prompts[: min(n, 200)]]
    stats = summary_ms(timed(lambda text: transformer.model().encode([text]), sample))  # type: ignore[arg-type]
    results["all-MiniLM-L6-v2 transformer, embedding only, ~200 tokens"] = stats
    rows.append(
        [
            "all-MiniLM-L6-v2 transformer, embedding only, ~200 tokens",
            len(sample),
            stats["p50_ms"],
            stats["p90_ms"],
            stats["p99_ms"],
            stats["max_ms"],
        ]
    )

    print_table(
        f"Router decision latency (6 candidate models; router loaded in {load_s:.2f} s)",
        ["path", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        rows,
    )
    classified_stats = results["classified, ~200 tokens"]
    hinted_stats = results["hinted (intent + language), ~200 tokens"]
    met = {
        "classified_p50_le_5ms": classified_stats["p50_ms"] <= 5,
        "classified_p99_le_15ms": classified_stats["p99_ms"] <= 15,
        "hinted_p50_le_0_1ms": hinted_stats["p50_ms"] <= 0.1,
    }
    ratio = results["all-MiniLM-L6-v2 transformer, embedding only, ~200 tokens"]["p50_ms"] / classified_stats["p50_ms"]
    print(f"targets: {met}")
    print(f"the transformer's embedding alone takes {ratio:.1f}x the whole static-path decision (p50)")
    write_json(
        "router_latency-quick" if args.quick else "router_latency",
        {
            "benchmark": "router_latency",
            "command": command_line(),
            "machine": machine(),
            "router_load_s": load_s,
            "results": results,
            "targets_met": met,
            "transformer_over_static_p50": ratio,
        },
    )


if __name__ == "__main__":
    main()
