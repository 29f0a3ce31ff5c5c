"""Online learning in simulation: regret over time, and quality at equal cost after N feedback events.

    python benchmarks/online_learning.py                  # 3 datasets x 2 λ x 2 exploration shares x 3 seeds
    python benchmarks/online_learning.py --seeds 1 --datasets zeroeval/gsm8k

For each dataset, the feedback learner (:class:`majordome.feedback.learner.BanditQuality`, starting
from the prior table: flat for these models) sees ``--events`` training prompts one at a time, picks
a model by ``Q̂ − λ·ĉ`` and learns the chosen model's score only
(:func:`majordome.bench.learning.simulate_feedback`). λ is set where the offline ``linear`` router
spends about 20 % and 50 % of the best single model's cost on the training side. The learner is
then compared on the test side with the offline-trained routers (``linear``, ``knn``: every
training outcome revealed): the gap in quality points at equal cost, after 250, 500, 1000 and
2000 events. Splits: RouterBench ARC's own train/test; for the others the first fold of the
seeded 5-fold split of :mod:`majordome.bench.splits` (seed 0). Writes
``benchmarks/results/online_learning.json`` and ``online_learning_regret.png``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from _common import RESULTS, command_line, machine, print_table, write_json

from majordome.bench.cost import fill_costs
from majordome.bench.dataset import Dataset
from majordome.bench.features import featurize
from majordome.bench.learning import (
    CHECKPOINTS,
    LearningResult,
    lambda_for_cost_share,
    offline_routers,
    simulate_feedback,
)
from majordome.bench.readers import load_dataset
from majordome.bench.splits import kfold, remove_overlap
from majordome.router.quality import QualityInputs

DATASETS = ("routerbench/arc_challenge", "zeroeval/gsm8k", "routellm/mmlu")
COST_SHARES = (0.2, 0.5)
EXPLORE_SHARES = (1.0, 0.25)
TARGET_POINTS = 2.0


def split(name: str) -> tuple[Dataset, QualityInputs, Dataset, QualityInputs, str]:
    if name == "routerbench/arc_challenge":
        train = fill_costs(load_dataset(name, split="train"))
        test, _ = remove_overlap(train, fill_costs(load_dataset(name, split="test")))
        setting = f"own split: train {train.size} -> test {test.size}"
        return train, featurize(train.prompts), test, featurize(test.prompts), setting
    data = fill_costs(load_dataset(name))
    features = featurize(data.prompts)
    train_rows, test_rows = kfold(data, 5, 0)[0]
    setting = f"fold 1 of 5 (seed 0): train {len(train_rows)} -> test {len(test_rows)}"
    return data.take(train_rows), features.take(train_rows), data.take(test_rows), features.take(test_rows), setting


def mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return statistics.fmean(finite) if finite else float("nan")


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``mean [min, max]`` over seeds."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def run_record(result: LearningResult, every: int = 10) -> dict[str, Any]:
    """One simulation as plain data (regret curves thinned to every ``every`` events)."""
    return {
        "seed": result.seed,
        "explore_share": result.explore_share,
        "lambda": result.lam,
        "events": result.events,
        "best_fixed": result.best_fixed,
        "final_regret_vs_oracle": float(result.regret[-1]),
        "best_fixed_final_regret_vs_oracle": float(result.fixed_regret[-1]),
        "final_regret_vs_best_fixed": float(result.regret_vs_fixed[-1]),
        "regret_rate_first_quarter": result.rate(0.0, 0.25),
        "regret_rate_last_quarter": result.rate(0.75, 1.0),
        "best_fixed_regret_rate": result.rate(0.0, 1.0, result.fixed_regret),
        "stream_quality": float(result.chosen_quality.mean()),
        "stream_cost": float(result.chosen_cost.mean()),
        "pulls": result.pulls,
        "explored": result.explored,
        "explore_changed_choice": result.explore_changed,
        "aiq": {name: curve.aiq for name, curve in result.curves.items()},
        "policy_at_lambda": {name: p._asdict() for name, p in result.policies.items()},
        "gap_points": {
            str(events): {name: asdict(gap) for name, gap in gaps.items()}
            for events, gaps in result.learning_curve.items()
        },
        "learned_aiq": {str(k): v for k, v in result.learning_aiq.items()},
        "curves": {name: [p._asdict() for p in curve.frontier] for name, curve in result.curves.items()},
        "regret_vs_oracle_every": every,
        "regret_vs_oracle": result.regret[every - 1 :: every].round(3).tolist(),
        "best_fixed_regret_vs_oracle": result.fixed_regret[every - 1 :: every].round(3).tolist(),
    }


def plot(results: dict[str, dict[tuple[float, float], list[LearningResult]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 8), squeeze=False)
    share = COST_SHARES[0]
    for column, name in enumerate(names):
        top, bottom = axes[0][column], axes[1][column]
        runs = results[name]
        for explore, style in zip(EXPLORE_SHARES, ("-", "--"), strict=False):
            seeds = runs.get((share, explore), [])
            for k, r in enumerate(seeds):
                top.plot(
                    r.regret,
                    style,
                    color="C0" if explore == 1.0 else "C1",
                    lw=1,
                    alpha=0.7,
                    label=f"learner, explore {explore:.0%}" if k == 0 else None,
                )
        first = runs[(share, EXPLORE_SHARES[0])][0]
        top.plot(first.fixed_regret, color="k", lw=1.2, label=f"best fixed ({first.best_fixed.split('/')[-1]})")
        top.set_title(f"{name} (λ = {first.lam:.3g}, ~{share:.0%} of the best model's cost)", fontsize=9)
        top.set_xlabel("feedback events")
        top.set_ylabel("cumulative regret vs oracle")
        top.legend(fontsize=7)
        for label in ("linear", "knn", "full-information", "learned", "prior-table"):
            hull = first.curves[label].frontier
            bottom.plot(
                [p.cost for p in hull],
                [p.quality for p in hull],
                marker=".",
                ms=3,
                lw=1,
                label=f"{label} (AIQ {first.curves[label].aiq:.3f})",
            )
        bottom.set_xscale("log")
        bottom.set_xlabel("test cost per prompt (USD, log)")
        bottom.set_ylabel("test quality")
        bottom.set_title(f"frontiers after {first.events} events (seed {first.seed}, explore 100 %)", fontsize=9)
        bottom.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path = RESULTS / "online_learning_regret.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()

    started = time.perf_counter()
    results: dict[str, dict[tuple[float, float], list[LearningResult]]] = {}
    datasets: dict[str, Any] = {}
    for name in args.datasets:
        train, train_features, test, test_features, setting = split(name)
        fitted = offline_routers(train, train_features)
        offline = {kind: router.predict(test, test_features) for kind, router in fitted.items()}
        mean_cost = np.nanmean(train.cost_usd, axis=0)
        in_sample = fitted["linear"].predict(train, train_features)
        lambdas = {share: lambda_for_cost_share(in_sample, train, mean_cost, share) for share in COST_SHARES}
        runs: dict[tuple[float, float], list[LearningResult]] = {}
        for share, lam in lambdas.items():
            for explore in EXPLORE_SHARES:
                runs[(share, explore)] = [
                    simulate_feedback(
                        train,
                        train_features,
                        test,
                        test_features,
                        events=args.events,
                        lam=lam,
                        explore_share=explore,
                        seed=seed,
                        offline=offline,
                    )
                    for seed in range(args.seeds)
                ]
        results[name] = runs
        datasets[name] = {
            "setting": setting,
            "models": list(train.models),
            "n_train": train.size,
            "n_test": test.size,
            "lambda_for_cost_share": {str(s): v for s, v in lambdas.items()},
            "runs": [run_record(r) for rs in runs.values() for r in rs],
        }
        print(f"{name}: {setting}, done at {time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started

    regret_rows, gap_rows, curve_rows = [], [], []
    verdicts: dict[str, Any] = {}
    for name, runs in results.items():
        for (share, explore), seeds in runs.items():
            lam = seeds[0].lam
            key = f"{name} @{share:.0%} explore {explore:.0%}"
            regret_rows.append(
                [
                    name,
                    f"{share:.0%}",
                    f"{lam:.3g}",
                    f"{explore:.0%}",
                    ", ".join(sorted({r.best_fixed.split("/")[-1] for r in seeds})),
                    spread([float(r.regret[-1]) for r in seeds], 1),
                    spread([float(r.fixed_regret[-1]) for r in seeds], 1),
                    spread([float(r.regret_vs_fixed[-1]) for r in seeds], 1),
                    f"{mean([r.rate(0, 0.25) for r in seeds]):.3f} -> {mean([r.rate(0.75, 1) for r in seeds]):.3f}",
                    f"{mean([r.rate(0, 1, r.fixed_regret) for r in seeds]):.3f}",
                ]
            )
            aiq = {label: mean([r.curves[label].aiq for r in seeds]) for label in seeds[0].curves}
            gap_linear = [r.gaps["linear"] for r in seeds]
            gap_knn = [r.gaps["knn"] for r in seeds]
            gap_rows.append(
                [
                    name,
                    f"{share:.0%}",
                    f"{explore:.0%}",
                    f"{aiq['prior-table']:.4f}",
                    f"{aiq['learned']:.4f}",
                    f"{aiq['full-information']:.4f}",
                    f"{aiq['linear']:.4f}",
                    f"{aiq['knn']:.4f}",
                    spread([g.mean for g in gap_linear]),
                    spread([g.max for g in gap_linear]),
                    spread([g.at_operating_point for g in gap_linear]),
                    spread([g.of_policy for g in gap_linear]),
                    spread([g.mean for g in gap_knn]),
                    spread([g.max for g in gap_knn]),
                ]
            )
            curve_rows.append(
                [name, f"{share:.0%}", f"{explore:.0%}"]
                + [
                    f"{mean([r.learning_curve[c]['linear'].mean for r in seeds]):.2f} / "
                    f"{mean([r.learning_curve[c]['linear'].at_operating_point for r in seeds]):.2f}"
                    for c in CHECKPOINTS
                    if c in seeds[0].learning_curve
                ]
            )
            verdicts[key] = {
                "gap_vs_linear_mean": mean([g.mean for g in gap_linear]),
                "gap_vs_linear_max": max(g.max for g in gap_linear),
                "gap_vs_knn_mean": mean([g.mean for g in gap_knn]),
                "within_target_vs_linear": mean([g.mean for g in gap_linear]) <= TARGET_POINTS,
                "within_target_vs_knn": mean([g.mean for g in gap_knn]) <= TARGET_POINTS,
            }
    print_table(
        f"online learning: regret over {args.events} feedback events ({args.seeds} seeds: mean [min, max])",
        [
            "dataset",
            "cost share",
            "λ",
            "explore",
            "best fixed",
            "regret vs oracle",
            "best fixed vs oracle",
            "regret vs best fixed",
            "regret/event Q1 -> Q4",
            "best fixed /event",
        ],
        regret_rows,
    )
    print_table(
        f"test side after {args.events} events: AIQ and the gap to the offline routers in quality points "
        "(offline - learner, at the offline router's costs; mean [min, max] over seeds)",
        [
            "dataset",
            "cost share",
            "explore",
            "AIQ prior",
            "AIQ learned",
            "AIQ full-info",
            "AIQ linear",
            "AIQ knn",
            "gap linear mean",
            "gap linear max",
            "gap linear at λ",
            "policy gap at λ",
            "gap knn mean",
            "gap knn max",
        ],
        gap_rows,
    )
    print_table(
        "learning curve: gap to linear, mean over costs / at λ, in points (mean over seeds)",
        ["dataset", "cost share", "explore", *(f"after {c}" for c in CHECKPOINTS if c <= args.events)],
        curve_rows,
    )
    print(f"total {seconds:.1f} s")
    plot(results)
    write_json(
        "online_learning",
        {
            "command": command_line(),
            "machine": machine(),
            "seconds": seconds,
            "events": args.events,
            "seeds": args.seeds,
            "cost_shares": list(COST_SHARES),
            "explore_shares": list(EXPLORE_SHARES),
            "target_points": TARGET_POINTS,
            "verdicts": verdicts,
            "datasets": datasets,
        },
    )


if __name__ == "__main__":
    main()
