"""One call per dataset: load, price, evaluate every router, write the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from majordome.bench.cost import fill_costs, load_price_file
from majordome.bench.evaluate import BenchResult, evaluate
from majordome.bench.readers import load_dataset
from majordome.bench.report import write_report
from majordome.bench.routers import default_routers

__all__ = ["SUITE", "run"]

# The public datasets of ../shared/datasets (MAJORDOME_DATA_DIR), in the order the suite runs them.
SUITE = ("routerbench/arc_challenge", "routellm/mmlu", "routellm/gsm8k", "routellm/mt_bench", "zeroeval/gsm8k")
_TRAIN_TEST = {"routerbench/arc_challenge"}


def run(
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    out: str | Path | None = "bench-reports",
    seed: int = 0,
    folds: int = 5,
    routers: Sequence[str] | None = None,
    prices: str | Path | None = None,
    bootstrap: int = 200,
    online: bool = True,
    progress: Callable[[str], None] | None = None,
    bars: bool = False,
) -> BenchResult:
    """Evaluate the routers on ``dataset`` (a name of :data:`SUITE` or a path to an outcomes file)
    and, with ``out``, write ``<out>/<dataset>/report.{md,json}`` and plots."""
    price_map = load_price_file(prices) if prices is not None else None
    data_path = Path(data_dir) if data_dir is not None else None
    if dataset in _TRAIN_TEST:
        train = fill_costs(load_dataset(dataset, split="train", data=data_path), price_map)
        test = fill_costs(load_dataset(dataset, split="test", data=data_path), price_map)
        result = evaluate(
            train,
            test=test,
            seed=seed,
            routers=default_routers(routers, seed=seed),
            bootstrap=bootstrap,
            online=online,
            progress=progress,
            name=dataset,
            bars=bars,
        )
    else:
        data = fill_costs(load_dataset(dataset, data=data_path), price_map)
        result = evaluate(
            data,
            folds=folds,
            seed=seed,
            routers=default_routers(routers, seed=seed),
            bootstrap=bootstrap,
            online=online,
            progress=progress,
            name=dataset,
            bars=bars,
        )
    if out is not None:
        write_report(result, Path(out) / dataset.replace("/", "_").replace("\\", "_").strip("._"))
    return result
