"""Recorded outcomes: how well a model answered a prompt, and what it cost.

The long format, one row per (prompt, model) — the format the feedback store exports and the
benchmarks read — as CSV or JSONL with the columns ``prompt_id, prompt, model, score`` and
optionally ``input_tokens, output_tokens, cost_usd, intent, language``. Scores are in [0, 1].
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from majordome._errors import ConfigurationError

__all__ = ["Outcome", "OutcomeTable", "read_outcomes"]


@dataclass(frozen=True, slots=True)
class Outcome:
    prompt_id: str
    prompt: str
    model: str
    score: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    intent: str | None = None
    language: str | None = None


def _optional_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(float(value))


def _optional_float(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def _row(data: dict[str, Any], where: str) -> Outcome:
    try:
        prompt_id = str(data["prompt_id"]).strip()
        model = str(data["model"]).strip()
        score = float(data["score"])
        prompt = str(data.get("prompt") or "")
    except KeyError as exc:
        raise ConfigurationError(f"{where}: missing column {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: score {data.get('score')!r} is not a number") from exc
    if not prompt_id or not model:
        raise ConfigurationError(f"{where}: empty prompt_id or model")
    if not math.isfinite(score) or not 0 <= score <= 1:
        raise ConfigurationError(f"{where}: score {score} is outside [0, 1]")
    try:
        return Outcome(
            prompt_id=prompt_id,
            prompt=prompt,
            model=model,
            score=score,
            input_tokens=_optional_int(data.get("input_tokens")),
            output_tokens=_optional_int(data.get("output_tokens")),
            cost_usd=_optional_float(data.get("cost_usd")),
            intent=str(data["intent"]) if data.get("intent") else None,
            language=str(data["language"]) if data.get("language") else None,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc


def read_outcomes(path: str | Path) -> list[Outcome]:
    """Outcomes from a long-format CSV or JSONL file; a malformed row is an error naming it."""
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")  # a BOM (spreadsheet exports) is not part of the first column
    except OSError as exc:
        raise ConfigurationError(f"cannot read outcomes {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"outcomes {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    rows: list[Outcome] = []
    if path.suffix in (".jsonl", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ConfigurationError(f"{path}, line {number}: not JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise ConfigurationError(f"{path}, line {number}: not a JSON object")
            rows.append(_row(data, f"{path}, line {number}"))
    else:
        reader = csv.DictReader(text.splitlines())
        for number, data in enumerate(reader, start=2):
            rows.append(_row(dict(data), f"{path}, row {number}"))
    if not rows:
        raise ConfigurationError(f"{path}: no outcomes")
    return rows


@dataclass
class OutcomeTable:
    """Outcomes as matrices: one row per prompt, one column per model, NaN where not recorded.
    Duplicate (prompt, model) rows are averaged and counted in ``duplicates``."""

    prompt_ids: list[str]
    prompts: list[str]
    models: list[str]
    scores: np.ndarray
    output_tokens: np.ndarray
    cost_usd: np.ndarray
    duplicates: int = 0
    intents: list[str | None] = field(default_factory=list)

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Outcome]) -> OutcomeTable:
        outcomes = list(outcomes)
        prompt_index: dict[str, int] = {}
        prompts: list[str] = []
        intents: list[str | None] = []
        models = sorted({o.model for o in outcomes})
        model_index = {m: j for j, m in enumerate(models)}
        for o in outcomes:
            if o.prompt_id not in prompt_index:
                prompt_index[o.prompt_id] = len(prompts)
                prompts.append(o.prompt)
                intents.append(o.intent)
        n, m = len(prompts), len(models)
        sums = np.zeros((n, m))
        counts = np.zeros((n, m))
        tokens = np.full((n, m), np.nan)
        cost = np.full((n, m), np.nan)
        for o in outcomes:
            i, j = prompt_index[o.prompt_id], model_index[o.model]
            sums[i, j] += o.score
            counts[i, j] += 1
            if o.output_tokens is not None:
                tokens[i, j] = o.output_tokens
            if o.cost_usd is not None:
                cost[i, j] = o.cost_usd
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return cls(
            prompt_ids=list(prompt_index),
            prompts=prompts,
            models=models,
            scores=scores,
            output_tokens=tokens,
            cost_usd=cost,
            duplicates=int((counts > 1).sum()),
            intents=intents,
        )

    def take(self, rows: Sequence[int]) -> OutcomeTable:
        index = np.asarray(rows, dtype=np.int64)
        return OutcomeTable(
            prompt_ids=[self.prompt_ids[i] for i in index],
            prompts=[self.prompts[i] for i in index],
            models=list(self.models),
            scores=self.scores[index],
            output_tokens=self.output_tokens[index],
            cost_usd=self.cost_usd[index],
            intents=[self.intents[i] for i in index] if self.intents else [],
        )
