"""The routing benchmark suite: every public dataset, every router, timed; plus the seed spread.

    python benchmarks/routing_suite.py              # the suite, then ARC with 5 training seeds
    python benchmarks/routing_suite.py --seeds 0    # the suite only

Runs :func:`majordome.bench.run` on each dataset of :data:`majordome.bench.SUITE` (reports under
``bench-reports/``), prints the headline numbers and records them with the wall time in
``benchmarks/results/routing_suite.json``. The embedding cache state (warm or cold) is recorded:
the target (whole suite <= 5 minutes on the 2-core machine) is for a warm cache, so run it twice
on a fresh machine.

The bootstrap intervals of the reports cover the test prompts' sampling, not the routers' own
randomness (initialisation, mini-batch order). ``--seeds N`` refits the trained routers on ARC
with N seeds and records the spread, which says how much of a gap between two routers is noise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import command_line, machine, print_table, write_json

from majordome.bench import SUITE, run
from majordome.knowledge.embeddings import cache_dir

SEEDED = ["prior-table", "knn", "linear", "mf", "rb-knn", "rb-mlp"]


def headline(result: Any) -> dict[str, Any]:
    best = result.best_learned()
    routers = {
        name: {
            "aiq": r.aiq,
            "aiq_ci": list(r.aiq_ci),
            "at_20pct_cost": r.at_cost_share.get(0.2),
            "apgr": r.apgr,
            "apgr_ci": list(r.apgr_ci) if r.apgr_ci else None,
            "cpt50": r.cpt50,
            "cpt80": r.cpt80,
        }
        for name, r in result.routers.items()
    }
    online = result.online
    return {
        "setting": result.setting,
        "n_test": result.n_test,
        "models": len(result.models),
        "best_model": result.best_model,
        "hull_aiq": result.hull_aiq,
        "best_learned": best.name if best else None,
        "routers": routers,
        "online": None
        if online is None
        else {
            "final_regret": online.final_regret,
            "best_fixed_final_regret": float(online.best_fixed_cumulative_regret[-1]),
            "late_rate": online.late_rate(),
            "best_fixed_late_rate": online.late_rate(online.best_fixed_cumulative_regret),
        },
        "seconds": result.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="training seeds for the ARC spread (0: skip)")
    parser.add_argument("--out", default="bench-reports")
    args = parser.parse_args()

    cached = len(list((cache_dir() / "bench").glob("*.npz"))) if (cache_dir() / "bench").is_dir() else 0
    started = time.perf_counter()
    results = {name: run(name, out=args.out) for name in SUITE}
    suite_seconds = time.perf_counter() - started

    rows = []
    for name, result in results.items():
        best = result.best_learned()
        rows.append(
            [
                name,
                result.n_test,
                f"{result.hull_aiq:.4f}",
                best.name if best else "-",
                f"{best.aiq:.4f}" if best else "-",
                f"{best.at_cost_share.get(0.2, float('nan')):.3f}" if best else "-",
                f"{best.apgr:.3f}" if best and best.apgr is not None else "-",
                f"{result.seconds:.1f}",
            ]
        )
    print_table(
        f"routing suite: {suite_seconds:.1f} s ({'warm' if cached else 'cold'} embedding cache: {cached} files)",
        ["dataset", "prompts", "hull AIQ", "best learned", "AIQ", "@20% cost", "APGR", "s"],
        rows,
    )

    spread: dict[str, Any] = {}
    if args.seeds:
        per_router: dict[str, list[tuple[float, float]]] = {name: [] for name in SEEDED}
        for seed in range(args.seeds):
            result = run(SUITE[0], out=None, seed=seed, routers=SEEDED, bootstrap=0, online=False)
            for name in SEEDED:
                r = result.routers[name]
                per_router[name].append((r.aiq, r.at_cost_share.get(0.2, float("nan"))))
        spread = {
            name: {
                "aiq": [a for a, _ in values],
                "at_20pct_cost": [q for _, q in values],
                "aiq_mean": statistics.fmean(a for a, _ in values),
                "aiq_min": min(a for a, _ in values),
                "aiq_max": max(a for a, _ in values),
            }
            for name, values in per_router.items()
        }
        print_table(
            f"{SUITE[0]}: {args.seeds} training seeds (hull AIQ {results[SUITE[0]].hull_aiq:.4f})",
            ["router", "AIQ mean", "min", "max", "@20% cost per seed"],
            [
                [
                    name,
                    f"{s['aiq_mean']:.4f}",
                    f"{s['aiq_min']:.4f}",
                    f"{s['aiq_max']:.4f}",
                    " ".join(f"{q:.3f}" for q in s["at_20pct_cost"]),
                ]
                for name, s in spread.items()
            ],
        )

    path = write_json(
        "routing_suite",
        {
            "command": command_line(),
            "machine": machine(),
            "embedding_cache_files_before": cached,
            "suite_seconds": suite_seconds,
            "datasets": {name: headline(result) for name, result in results.items()},
            "arc_seed_spread": spread,
        },
    )
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
