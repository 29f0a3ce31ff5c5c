"""Routing benchmarks for data scientists: datasets, baselines, learned routers, metrics, reports.

    from majordome.bench import run
    result = run("routerbench/arc_challenge")      # train -> test, every router, report on disk
    print(result.best_learned().name, result.hull_aiq)

or ``majordome bench --dataset routellm/gsm8k``. Nothing here is imported by the request path.
"""

from majordome.bench.dataset import Dataset
from majordome.bench.evaluate import BenchResult, RouterResult, evaluate
from majordome.bench.routers import BenchRouter, default_routers
from majordome.bench.run import SUITE, run

__all__ = [
    "SUITE",
    "BenchResult",
    "BenchRouter",
    "Dataset",
    "RouterResult",
    "default_routers",
    "evaluate",
    "run",
]
