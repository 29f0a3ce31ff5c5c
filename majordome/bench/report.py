"""The benchmark report: a Markdown page, a JSON file and PNG plots per dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

from majordome.bench.evaluate import BenchResult, summary

__all__ = ["markdown", "write_report"]


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(interval: tuple[float, float] | None) -> str:
    if interval is None or any(math.isnan(v) for v in interval):
        return ""
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]"


def markdown(result: BenchResult) -> str:
    """The report of one dataset as Markdown."""
    best = result.singles[result.best_model]
    lines = [
        f"## {result.dataset}",
        "",
        f"{result.setting}; {result.n_test} prompts evaluated; {len(result.models)} models; {result.seconds:.1f} s.",
        "",
    ]
    if result.problems:
        lines += ["Data problems found and handled:", ""] + [f"- {p}" for p in result.problems] + [""]
    lines += ["| model | cost $/prompt | quality |", "|---|---|---|"]
    for model, point in sorted(result.singles.items(), key=lambda kv: kv[1].cost):
        mark = " (best)" if model == result.best_model else ""
        lines.append(f"| {model}{mark} | {point.cost:.6f} | {point.quality:.4f} |")
    lines += [
        "",
        f"Single-model hull (RouterBench's Zero router) AIQ: **{result.hull_aiq:.4f}**. Quality at a share of "
        f"{result.best_model}'s cost (${best.cost:.6f}) is given as a share of its quality ({best.quality:.4f}).",
        "",
    ]
    two = result.strong is not None
    header = "| router | AIQ [95% CI] | at 10% cost | at 20% cost | at 50% cost |"
    rule = "|---|---|---|---|---|"
    if two:
        header += " APGR [95% CI] | CPT(50%) | CPT(80%) |"
        rule += "---|---|---|"
    lines += [header + " fit+predict s |", rule + "---|"]
    ordered = sorted(result.routers.values(), key=lambda r: (not r.learned, -r.aiq if not math.isnan(r.aiq) else 0))
    for r in ordered:
        row = (
            f"| {r.name}{'' if r.learned else ' *'} | {_f(r.aiq, 4)}{_ci(r.aiq_ci)} | "
            + " | ".join(_f(r.at_cost_share.get(s)) for s in (0.1, 0.2, 0.5))
            + " |"
        )
        if two:
            row += f" {_f(r.apgr)}{_ci(r.apgr_ci)} | {_f(r.cpt50)} | {_f(r.cpt80)} |"
        row += f" {r.fit_seconds:.2f} |"
        lines.append(row)
    lines += ["", "\\* not a learned router (bound or baseline).", ""]
    best_learned = result.best_learned()
    if best_learned is not None:
        reached = best_learned.at_cost_share.get(0.2, float("nan"))
        lines.append(
            f"Best learned router by AIQ: **{best_learned.name}** (AIQ {best_learned.aiq:.4f} vs hull "
            f"{result.hull_aiq:.4f}); at 20% of {result.best_model}'s cost it reaches {_f(reached)} of its quality."
        )
    if result.online is not None:
        online = result.online
        fixed_rate = online.late_rate(online.best_fixed_cumulative_regret)
        lines += [
            "",
            f"Online learner (LinUCB, λ = {online.lam:.4g}, {result.n_test} prompts streamed once): "
            f"final cumulative regret {online.final_regret:.1f} vs {online.best_fixed_cumulative_regret[-1]:.1f} "
            f"for the best single model in hindsight; over the second half of the stream, "
            f"{online.late_rate():.4f} regret per prompt vs {fixed_rate:.4f}; "
            f"mean quality {online.quality:.4f} at ${online.cost:.6f}.",
        ]
    return "\n".join(lines) + "\n"


def _plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5.5))
    hull = result.hull
    axis.plot([p.cost for p in hull], [p.quality for p in hull], "k--", lw=1.2, label="single-model hull")
    for model, point in result.singles.items():
        axis.scatter([point.cost], [point.quality], color="black", s=18, zorder=3)
        axis.annotate(
            model.split("/")[-1], (point.cost, point.quality), fontsize=6, xytext=(3, 2), textcoords="offset points"
        )
    for r in result.routers.values():
        ordered = sorted(r.points, key=lambda p: p.cost)
        axis.plot(
            [p.cost for p in ordered],
            [p.quality for p in ordered],
            marker=".",
            ms=3,
            lw=1,
            label=f"{r.name} (AIQ {r.aiq:.3f})",
            alpha=0.85 if r.learned else 0.5,
        )
    axis.set_xscale("log")
    axis.set_xlabel("cost per prompt (USD, log)")
    axis.set_ylabel("quality")
    axis.set_title(f"{result.dataset}: quality vs cost")
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path / "quality_cost.png", dpi=120)
    plt.close(figure)
    if result.online is not None:
        figure, axis = plt.subplots(figsize=(7, 4))
        axis.plot(result.online.cumulative_regret, label="online learner (LinUCB)")
        axis.plot(result.online.best_fixed_cumulative_regret, label="best single model in hindsight")
        axis.set_xlabel("prompts seen")
        axis.set_ylabel("cumulative regret")
        axis.set_title(f"{result.dataset}: regret over time")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(path / "regret.png", dpi=120)
        plt.close(figure)


def write_report(result: BenchResult, directory: str | Path) -> Path:
    """``report.md``, ``report.json`` and the plots in ``directory`` (created)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "report.md").write_text(markdown(result), "utf-8")
    (path / "report.json").write_text(json.dumps(summary(result), indent=2, default=float), "utf-8")
    _plot(result, path)
    return path
