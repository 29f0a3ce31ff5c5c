"""RouterBench's wide table: one row per prompt, a score, response and cost column per model."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from majordome._errors import ConfigurationError
from majordome.bench._parsing import Row, is_missing, nonempty, number, read_csv, shown, text_list
from majordome.bench.dataset import Dataset
from majordome.models.tokens import count_tokens

_RB_KEYS = ("", "Unnamed: 0")
_RB_FIXED = {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to", *_RB_KEYS}
_RB_SUFFIXES = ("model_response", "total_cost")
_NO_MODEL = "no_model_correct"


@dataclass
class _RbRow:
    where: str
    sample_id: str
    parts: list[str]
    eval_name: str
    scores: np.ndarray
    costs: np.ndarray
    responses: list[list[str] | None]
    oracle: str | None
    merged: bool = False

    @property
    def prompt(self) -> str:
        return "\n".join(self.parts)


def _routerbench_table(path: Path) -> tuple[list[str], list[Row]]:
    if path.suffix in (".pkl", ".pickle"):
        try:
            pandas: Any = importlib.import_module("pandas")
        except ImportError as exc:
            raise ConfigurationError(
                f"{path}: reading a pickled DataFrame needs pandas, which is not installed (pip install pandas)"
            ) from exc
        frame = pandas.read_pickle(path)  # a pickle runs code: read only files you trust
        if not isinstance(frame, pandas.DataFrame):
            raise ConfigurationError(f"{path}: the pickle holds a {type(frame).__name__}, not a pandas DataFrame")
        columns = [str(c) for c in frame.columns]
        records = frame.itertuples(index=True, name=None)
        return columns, [Row(path, n, n, dict(zip(["", *columns], r, strict=True))) for n, r in enumerate(records, 1)]
    return read_csv(path)


def _routerbench_rows(path: Path) -> tuple[list[str], list[_RbRow]]:
    columns, table = _routerbench_table(path)
    missing = [c for c in ("sample_id", "prompt", "eval_name") if c not in columns]
    if missing:
        raise ConfigurationError(f"{path}: missing column(s) {missing}")
    models = [c for c in columns if "|" not in c and c not in _RB_FIXED]
    if not models:
        raise ConfigurationError(f"{path}: no model score columns")
    for column in columns:
        model, sep, suffix = column.partition("|")
        if sep and (model not in models or suffix not in _RB_SUFFIXES):
            raise ConfigurationError(
                f"{path}: column {column!r}: no score column {model!r} or an unknown suffix (expected {_RB_SUFFIXES})"
            )
    lacking = [f"{m}|total_cost" for m in models if f"{m}|total_cost" not in columns]
    if lacking:
        raise ConfigurationError(f"{path}: missing column(s) {lacking}")
    rows: list[_RbRow] = []
    for row in table:
        responses: list[list[str] | None] = []
        for m in models:
            value = row.values.get(f"{m}|model_response")
            responses.append(None if is_missing(value) else text_list(value, row.at(f"{m}|model_response")))
        oracle = row.values.get("oracle_model_to_route_to")
        rows.append(
            _RbRow(
                where=row.at(),
                sample_id=nonempty(row.get("sample_id"), row.at("sample_id")).strip(),
                parts=text_list(row.get("prompt"), row.at("prompt")),
                eval_name=nonempty(row.get("eval_name"), row.at("eval_name")),
                scores=np.array([number(row.get(m), row.at(m), "score", 0.0, 1.0) for m in models]),
                costs=np.array([number(row.get(f"{m}|total_cost"), row.at(f"{m}|total_cost"), "cost") for m in models]),
                responses=responses,
                oracle=None if is_missing(oracle) else str(oracle),
            )
        )
        if not rows[-1].parts:
            raise ConfigurationError(f"{row.at('prompt')}: empty prompt list")
    if not rows:
        raise ConfigurationError(f"{path}: no data rows")
    return models, rows


def _merge_duplicates(rows: list[_RbRow]) -> tuple[list[_RbRow], list[str]]:
    """One row per sample_id: complementary halves merged, conflicting duplicates dropped."""
    by_id: dict[str, list[_RbRow]] = {}
    for row in rows:
        by_id.setdefault(row.sample_id, []).append(row)
    kept: list[_RbRow] = []
    merged: list[str] = []
    conflicting: list[str] = []
    for sample_id, group in by_id.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        present = np.array([~np.isnan(r.scores) for r in group])
        if present.sum(axis=0).max() > 1 or len({r.eval_name for r in group}) > 1:
            conflicting.append(sample_id)
            continue
        base = max(group, key=lambda r: int((~np.isnan(r.scores)).sum()))
        scores, costs, responses = base.scores.copy(), base.costs.copy(), list(base.responses)
        for other in group:
            if other is base:
                continue
            take = ~np.isnan(other.scores)
            scores[take], costs[take] = other.scores[take], other.costs[take]
            for j in np.flatnonzero(take):
                responses[j] = other.responses[j]
        kept.append(_RbRow(base.where, sample_id, base.parts, base.eval_name, scores, costs, responses, None, True))
        merged.append(sample_id)
    problems = []
    if merged:
        problems.append(
            f"duplicate sample_ids: {len(merged)} sample_ids occur on several rows carrying complementary models; "
            f"merged into one row each (prompt from the row with more scores): {shown(merged)}"
        )
    if conflicting:
        count = sum(len(by_id[s]) for s in conflicting)
        problems.append(
            f"duplicate sample_ids: {len(conflicting)} sample_ids occur on {count} rows with overlapping models; "
            f"all those rows dropped: {shown(conflicting)}"
        )
    return kept, problems


def _oracle_mismatches(rows: Sequence[_RbRow], models: Sequence[str]) -> int:
    """Rows whose ``oracle_model_to_route_to`` is not the cheapest model scoring 1."""
    wrong = 0
    for row in rows:
        if row.oracle is None or row.merged:
            continue
        correct = [j for j in range(len(models)) if row.scores[j] == 1.0]
        if not correct:
            wrong += row.oracle != _NO_MODEL
            continue
        cheapest = min(row.costs[j] for j in correct)
        wrong += row.oracle not in {models[j] for j in correct if row.costs[j] == cheapest}
    return wrong


def read_routerbench(path: str | Path, *, name: str | None = None, other_split: str | Path | None = None) -> Dataset:
    """A RouterBench wide table (CSV, or a pandas DataFrame pickle when pandas is installed).

    ``prompt_ids`` are the ``sample_id``s; the prompt is the list literal's strings joined with
    newlines; ``groups`` are the ``eval_name``s; ``output_tokens`` are the responses' lengths in
    ``cl100k_base``. Rows sharing a ``sample_id`` are merged when they carry complementary models,
    else dropped; rows still missing a score are dropped. With ``other_split`` (the other file of
    a train/test split), ids and prompt texts found in both files are reported.
    """
    path = Path(path)
    models, raw = _routerbench_rows(path)
    rows, problems = _merge_duplicates(raw)
    incomplete = [r for r in rows if np.isnan(r.scores).any()]
    if incomplete:
        problems.append(
            f"missing scores: {len(incomplete)} rows lack scores ({_absent(incomplete, models)}) and have no "
            f"complementary row in this file; dropped: {shown([r.sample_id for r in incomplete])}"
        )
        rows = [r for r in rows if not np.isnan(r.scores).any()]
    doubled = [r for r in raw if _doubled(r)]
    if doubled:
        kept = sum(_doubled(r) for r in rows)
        problems.append(
            f"repeated prompt: {len(doubled)} rows have a prompt list holding one string several times; "
            f"{kept} of them kept as given, the others merged (prompt of the other row) or dropped"
        )
    if not rows:
        raise ConfigurationError(f"{path}: no complete rows left")
    wrong = _oracle_mismatches(rows, models)
    if wrong:
        problems.append(
            f"oracle column: on {wrong} rows oracle_model_to_route_to is not the cheapest model scoring 1 "
            "(the column is not used)"
        )
    costs = np.array([r.costs for r in rows])
    if np.isnan(costs).any():
        problems.append(f"missing costs: {int(np.isnan(costs).sum())} calls have no total_cost (left NaN)")
    if other_split is not None:
        other = Path(other_split)
        other_models, other_rows = _routerbench_rows(other)
        problems += _split_overlap(raw, rows, models, other_rows, other_models, other.name)
    tokens = np.array(
        [[math.nan if r is None else count_tokens("\n".join(r)) for r in row.responses] for row in rows], dtype=float
    )
    return Dataset(
        name=name or path.stem,
        prompt_ids=[r.sample_id for r in rows],
        prompts=[r.prompt for r in rows],
        models=list(models),
        scores=np.array([r.scores for r in rows]),
        cost_usd=costs,
        input_tokens=None,
        output_tokens=None if np.isnan(tokens).all() else tokens,
        groups=[r.eval_name for r in rows],
        problems=problems,
    )


def _doubled(row: _RbRow) -> bool:
    return len(row.parts) > 1 and len(set(row.parts)) == 1


def _absent(rows: Sequence[_RbRow], models: Sequence[str]) -> str:
    """How scores are missing, e.g. ``5 rows without gpt-3.5, 1 row without 10 of 11 models``."""
    kinds: dict[str, int] = {}
    for row in rows:
        missing = [models[int(j)] for j in np.flatnonzero(np.isnan(row.scores))]
        kind = missing[0] if len(missing) == 1 else f"{len(missing)} of {len(models)} models"
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n} without {kind}" for kind, n in sorted(kinds.items(), key=lambda item: -item[1]))


def _split_overlap(
    raw: Sequence[_RbRow],
    kept: Sequence[_RbRow],
    models: Sequence[str],
    other: Sequence[_RbRow],
    other_models: Sequence[str],
    label: str,
) -> list[str]:
    """Sample ids and prompt texts of this file also found in the other file of the split."""
    here = {r.sample_id: r for r in raw}
    there = {r.sample_id: r for r in other}
    shared = sorted(set(here) & set(there))
    problems = []
    if shared:
        halves = 0
        if set(models) == set(other_models):
            order = [other_models.index(m) for m in models]
            halves = sum(bool(np.all(np.isnan(here[s].scores) != np.isnan(there[s].scores[order]))) for s in shared)
        remaining = len(set(shared) & {r.sample_id for r in kept})
        problems.append(
            f"split leakage: {len(shared)} sample_ids also occur in {label} ({shown(shared)}); {halves} of them are "
            f"complementary halves of one sample split across the files; {remaining} remain in this dataset"
        )
    prompts = {r.prompt for r in raw} & {r.prompt for r in other}
    if prompts:
        problems.append(f"split leakage: {len(prompts)} prompt texts also occur in {label}")
    return problems
