"""Parsing shared by the benchmark readers: CSV and JSONL records that can name themselves in
an error (file, row, line, column), and strict cell parsers."""

from __future__ import annotations

import ast
import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from majordome._errors import ConfigurationError
from majordome.models.tokens import count_tokens

# Tokens of chat framing around one user message (role markers), added to the text's count.
PROMPT_FRAMING_TOKENS = 4
_SHOWN = 8  # ids quoted in a problem line before "..."


def estimate_input_tokens(prompt: str) -> int:
    """Input tokens of ``prompt`` sent as one user message: ``cl100k_base`` count + framing."""
    return count_tokens(prompt) + PROMPT_FRAMING_TOKENS


@dataclass(frozen=True, slots=True)
class Row:
    """One record of a source file, with what is needed to name it in an error."""

    path: Path
    number: int  # 1-based data row (CSV) or line (JSONL)
    line: int  # physical line where the record starts
    values: dict[str, Any]

    def at(self, column: str | None = None) -> str:
        where = f"{self.path}, row {self.number} (line {self.line})"
        return f"{where}, column {column!r}" if column is not None else where

    def get(self, column: str) -> Any:
        if column not in self.values:
            raise ConfigurationError(f"{self.at()}: missing column {column!r}")
        return self.values[column]


def read_csv(path: Path, required: Iterable[str] = ()) -> tuple[list[str], list[Row]]:
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    rows: list[Row] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ConfigurationError(f"{path}: empty file, expected a header row")
            seen = {name for name in header if header.count(name) > 1}
            if seen:
                raise ConfigurationError(f"{path}: duplicated column(s) {sorted(seen)} in the header")
            missing = [name for name in required if name not in header]
            if missing:
                raise ConfigurationError(f"{path}: missing column(s) {missing}")
            while True:
                start = reader.line_num + 1
                record = next(reader, None)
                if record is None:
                    break
                if not record:
                    continue
                number = len(rows) + 1
                if len(record) != len(header):
                    raise ConfigurationError(
                        f"{path}, row {number} (line {start}): {len(record)} fields, the header has {len(header)}"
                    )
                rows.append(Row(path, number, start, dict(zip(header, record, strict=True))))
        except csv.Error as exc:
            raise ConfigurationError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid UTF-8 ({exc.reason})") from exc
    return header, rows


def read_jsonl(path: Path) -> list[Row]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigurationError(f"{path}, line {number}: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path}, line {number}: not a JSON object")
        rows.append(Row(path, number, number, data))
    return rows


def is_missing(value: Any) -> bool:
    return value is None or str(value).strip().lower() in ("", "nan", "none")


def number(value: Any, where: str, what: str, low: float = 0.0, high: float = math.inf) -> float:
    """A finite number in [low, high], NaN for an empty cell; anything else is an error."""
    if is_missing(value):
        return math.nan
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        bounds = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise ConfigurationError(f"{where}: {what} {value!r} is not a number {bounds}")
    return number


_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


def boolean(value: Any, where: str) -> float:
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    raise ConfigurationError(f"{where}: {value!r} is not a boolean (True/False)")


def nonempty(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def text_list(value: Any, where: str) -> list[str]:
    """A RouterBench list of strings: a Python list literal (CSV) or a list (pickle)."""
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ConfigurationError(f"{where}: not a Python list literal of strings ({type(exc).__name__})") from exc
    if not isinstance(parsed, list | tuple) or not all(isinstance(item, str) for item in parsed):
        raise ConfigurationError(f"{where}: expected a list of strings, got {type(parsed).__name__}")
    return list(parsed)


def shown(items: Sequence[str]) -> str:
    head = ", ".join(items[:_SHOWN])
    return head + (", ..." if len(items) > _SHOWN else "")


def duplicate_prompts(prompts: Sequence[str], scores: np.ndarray, how: str) -> list[str]:
    first: dict[str, int] = {}
    repeats = 0
    repeated: set[str] = set()
    differing: set[str] = set()
    for i, prompt in enumerate(prompts):
        j = first.setdefault(prompt, i)
        if j != i:
            repeats += 1
            repeated.add(prompt)
            if not np.array_equal(scores[i], scores[j], equal_nan=True):
                differing.add(prompt)
    if not repeats:
        return []
    return [
        f"duplicate prompts: {repeats} rows repeat a prompt text that occurs earlier ({len(repeated)} distinct "
        f"texts, {len(differing)} of them with different scores on their copies); {how}"
    ]


def contaminated(path: Path) -> list[str]:
    texts = [nonempty(row.get("eval_prompt"), row.at("eval_prompt")) for row in read_jsonl(path)]
    if not texts:
        raise ConfigurationError(f"{path}: no contaminated prompts listed")
    return texts
