"""Readers of the routing benchmarks' files, each returning a validated :class:`Dataset`.

:func:`load_dataset` knows the datasets under the data directory (:func:`data_dir`)::

    routerbench/<benchmark>  RouterBench wide table, split "train" or "test" (required)
    routellm/mmlu            57 subject CSVs, strong/weak pair; groups = subject
    routellm/gsm8k           one CSV with the pair's correctness and responses
    routellm/mt_bench        questions + GPT-4 judgements; one prompt per (question, turn)
    zeroeval/gsm8k           16 models, long format, re-scored correctness
    <path>                   a long-format outcomes file (CSV/JSONL), or a RouterBench CSV/pickle

Malformed input raises :class:`ConfigurationError` naming the file, the row or line and the
column. Problems of the data itself (duplicates, missing scores, contaminated prompts, ids in
both splits) are handled as documented per reader and recorded in ``Dataset.problems`` with
counts. RouteLLM and ZeroEval record no cost: ``cost_usd`` is NaN there
(:func:`majordome.bench.cost.fill_costs` prices it).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from majordome._errors import ConfigurationError
from majordome.bench._parsing import (
    duplicate_prompts,
    estimate_input_tokens,
    nonempty,
    number,
    read_csv,
    read_jsonl,
    shown,
)
from majordome.bench._routellm import read_routellm_gsm8k, read_routellm_mmlu, read_routellm_mt_bench
from majordome.bench._routerbench import read_routerbench
from majordome.bench.dataset import Dataset
from majordome.router.outcomes import Outcome, read_outcomes

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "check_leakage",
    "data_dir",
    "estimate_input_tokens",
    "load_dataset",
    "read_long_outcomes",
    "read_routellm_gsm8k",
    "read_routellm_mmlu",
    "read_routellm_mt_bench",
    "read_routerbench",
    "read_zeroeval_gsm8k",
]

DATA_DIR_ENV = "MAJORDOME_DATA_DIR"
DATASETS = ("routerbench/arc_challenge", "routellm/mmlu", "routellm/gsm8k", "routellm/mt_bench", "zeroeval/gsm8k")
SPLITS = ("train", "test")


# -- where the data is -------------------------------------------------------------------------


def _locate(explicit: str | Path | None) -> tuple[Path, str]:
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"data directory {path} does not exist")
        return path, "the argument"
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"{DATA_DIR_ENV}={value}: no such directory")
        return path, DATA_DIR_ENV
    default = (Path(__file__).resolve().parents[2].parent / "shared" / "datasets").resolve()
    if default.is_dir():
        return default, "the default next to the repository"
    raise ConfigurationError(
        f"no benchmark data directory: pass one or set {DATA_DIR_ENV} (the default {default} does not exist)"
    )


def data_dir(explicit: str | Path | None = None) -> Path:
    """The benchmark data directory: ``explicit``, else ``$MAJORDOME_DATA_DIR``, else
    ``../shared/datasets`` next to the repository root when it exists."""
    return _locate(explicit)[0]


def _require(path: Path, root: Path, source: str) -> Path:
    if not path.exists():
        raise ConfigurationError(
            f"{path} does not exist (data directory {root}, from {source}; set {DATA_DIR_ENV} to change it)"
        )
    return path


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_leakage(train: Dataset, test: Dataset) -> list[str]:
    """What ``train`` and ``test`` share: prompt ids, identical prompt texts, and texts equal up
    to whitespace and case. An empty list means no overlap was found."""
    problems = []
    ids = sorted(set(train.prompt_ids) & set(test.prompt_ids))
    if ids:
        problems.append(f"{len(ids)} prompt ids in both {train.name} and {test.name}: {shown(ids)}")
    exact = set(train.prompts) & set(test.prompts)
    if exact:
        problems.append(f"{len(exact)} prompt texts in both {train.name} and {test.name}")
    loose = {_normalise(p) for p in train.prompts} & {_normalise(p) for p in test.prompts}
    extra = len(loose) - len({_normalise(p) for p in exact})
    if extra:
        problems.append(f"{extra} more prompt texts equal up to whitespace and case in both")
    return problems


# -- long format (ZeroEval and any outcomes file) ----------------------------------------------


class _Cells:
    """Sums and counts of one per-cell quantity, averaged over duplicate rows."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.sums = np.zeros(shape)
        self.counts = np.zeros(shape)

    def add(self, i: int, j: int, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.sums[i, j] += value
            self.counts[i, j] += 1

    def mean(self) -> np.ndarray | None:
        if not self.counts.any():
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)


def _from_outcomes(outcomes: Sequence[Outcome], name: str) -> Dataset:
    """Long-format rows as a Dataset: prompts and models in order of first appearance."""
    prompt_index: dict[str, int] = {}
    prompts: list[str] = []
    intents: list[str | None] = []
    model_index: dict[str, int] = {}
    conflicting: set[str] = set()
    for o in outcomes:
        model_index.setdefault(o.model, len(model_index))
        i = prompt_index.setdefault(o.prompt_id, len(prompts))
        if i == len(prompts):
            prompts.append(o.prompt)
            intents.append(o.intent)
        elif o.prompt and o.prompt != prompts[i]:
            if prompts[i]:
                conflicting.add(o.prompt_id)
            else:
                prompts[i] = o.prompt  # an earlier row had no text: not a conflict
    shape = (len(prompts), len(model_index))
    score, inputs, outputs, cost = _Cells(shape), _Cells(shape), _Cells(shape), _Cells(shape)
    for o in outcomes:
        i, j = prompt_index[o.prompt_id], model_index[o.model]
        score.add(i, j, o.score)
        inputs.add(i, j, None if o.input_tokens is None else float(o.input_tokens))
        outputs.add(i, j, None if o.output_tokens is None else float(o.output_tokens))
        cost.add(i, j, o.cost_usd)
    scores = score.mean()
    if scores is None:
        raise ConfigurationError(f"{name}: no outcomes")
    problems = []
    duplicates = int((score.counts > 1).sum())
    if duplicates:
        problems.append(f"duplicate rows: {duplicates} (prompt, model) cells recorded more than once; averaged")
    if conflicting:
        problems.append(f"conflicting prompts: {len(conflicting)} prompt ids carry different prompt texts; first kept")
    empty = sum(not p for p in prompts)
    if empty:
        problems.append(f"empty prompts: {empty} prompt ids have no prompt text")
    missing = int(np.isnan(scores).sum())
    if missing:
        problems.append(f"missing outcomes: {missing} of {scores.size} (prompt, model) cells have no score (NaN)")
    costs = cost.mean()
    return Dataset(
        name=name,
        prompt_ids=list(prompt_index),
        prompts=prompts,
        models=list(model_index),
        scores=scores,
        cost_usd=costs if costs is not None else np.full(shape, np.nan),
        input_tokens=inputs.mean(),
        output_tokens=outputs.mean(),
        groups=[str(t) for t in intents] if intents and all(intents) else None,
        problems=problems,
    )


def read_long_outcomes(path: str | Path, *, name: str | None = None) -> Dataset:
    """A long-format outcomes file (see :mod:`majordome.router.outcomes`); groups = intents
    when every prompt has one."""
    path = Path(path)
    return _from_outcomes(read_outcomes(path), name or path.stem)


def read_zeroeval_gsm8k(folder: str | Path) -> Dataset:
    """ZeroEval's GSM8K outcomes (``prompts.jsonl`` + ``outcomes.csv``): 0/1 scores, output
    tokens as recorded, input tokens estimated (:func:`estimate_input_tokens`), no cost."""
    folder = Path(folder)
    prompts: dict[str, str] = {}
    for row in read_jsonl(folder / "prompts.jsonl"):
        prompt_id = nonempty(row.get("prompt_id"), row.at("prompt_id"))
        if prompt_id in prompts:
            raise ConfigurationError(f"{row.at('prompt_id')}: prompt id {prompt_id!r} appears twice")
        prompts[prompt_id] = nonempty(row.get("prompt"), row.at("prompt"))
    _, rows = read_csv(folder / "outcomes.csv", required=["prompt_id", "model", "score"])
    input_tokens = {pid: estimate_input_tokens(prompt) for pid, prompt in prompts.items()}
    outcomes: list[Outcome] = []
    unknown: set[str] = set()
    for row in rows:
        prompt_id = nonempty(row.get("prompt_id"), row.at("prompt_id"))
        score = number(row.get("score"), row.at("score"), "score", 0.0, 1.0)
        if score not in (0.0, 1.0):
            raise ConfigurationError(f"{row.at('score')}: score {row.get('score')!r} is not 0 or 1")
        tokens = number(row.values.get("output_tokens"), row.at("output_tokens"), "token count")
        if prompt_id not in prompts:
            unknown.add(prompt_id)
            continue
        outcomes.append(
            Outcome(
                prompt_id=prompt_id,
                prompt=prompts[prompt_id],
                model=nonempty(row.get("model"), row.at("model")),
                score=score,
                input_tokens=input_tokens[prompt_id],
                output_tokens=None if math.isnan(tokens) else int(tokens),
            )
        )
    if not outcomes:
        raise ConfigurationError(f"{folder / 'outcomes.csv'}: no outcomes for the prompts of prompts.jsonl")
    dataset = _from_outcomes(outcomes, "zeroeval/gsm8k")
    if unknown:
        dataset.problems.append(f"unknown prompts: outcomes of {len(unknown)} prompt ids not in prompts.jsonl ignored")
    unused = len(prompts) - dataset.size
    if unused:
        dataset.problems.append(f"prompts without outcomes: {unused} prompts of prompts.jsonl have none; left out")
    dataset.problems += duplicate_prompts(dataset.prompts, dataset.scores, "kept, each under its own prompt id")
    return dataset


# -- by name -----------------------------------------------------------------------------------


def _read_path(path: Path) -> Dataset:
    if path.suffix in (".pkl", ".pickle"):
        return read_routerbench(path)
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
        if "sample_id" in header and "model" not in header:
            return read_routerbench(path)
    return read_long_outcomes(path)


def load_dataset(name: str, *, split: str | None = None, data: Path | None = None) -> Dataset:
    """A benchmark dataset by name (see the module docstring) or by path.

    RouterBench files come as a train/test split and ``split`` must say which (the other file is
    checked for shared ids and prompts); the other datasets have no split.
    """
    family, _, benchmark = name.partition("/")
    known = family in ("routerbench", "routellm", "zeroeval")
    if not known or not benchmark:
        path = Path(name).expanduser()
        if path.is_file() and split is None:
            return _read_path(path)
        raise ConfigurationError(
            f"unknown dataset {name!r}: expected one of {list(DATASETS)} (routerbench/<benchmark> for any "
            "RouterBench file pair) or the path of an outcomes file" + (" without split" if split else "")
        )
    root, source = _locate(data)
    if family == "routerbench":
        if split not in SPLITS:
            raise ConfigurationError(f"{name} is split into train and test: pass split='train' or split='test'")
        other_split = SPLITS[1 - SPLITS.index(split)]
        files = {s: root / "routerbench" / f"{benchmark}_{s}.csv" for s in SPLITS}
        for s in SPLITS:
            if not files[s].exists() and files[s].with_suffix(".pkl").exists():
                files[s] = files[s].with_suffix(".pkl")
        other = files[other_split] if files[other_split].exists() else None
        return read_routerbench(_require(files[split], root, source), name=f"{name}/{split}", other_split=other)
    if split is not None:
        raise ConfigurationError(f"{name} has no train/test split: leave split out")
    if name not in _FILES:
        raise ConfigurationError(f"unknown dataset {name!r}: expected one of {list(DATASETS)}")
    folder, needed, reader = _FILES[name]
    for file in needed:
        _require(root / folder / file, root, source)
    return reader(root / folder)


_FILES: dict[str, tuple[str, tuple[str, ...], Callable[[Path], Dataset]]] = {
    "routellm/mmlu": ("routellm/mmlu", ("responses", "mmlu_contaminated_prompts.jsonl"), read_routellm_mmlu),
    "routellm/gsm8k": (
        "routellm/gsm8k",
        ("gsm8k_responses.csv", "gsm8k_contaminated_prompts.jsonl"),
        read_routellm_gsm8k,
    ),
    "routellm/mt_bench": (
        "routellm/mt_bench",
        ("question.jsonl", "judgements.jsonl", "mt_bench_contaminated_prompts.jsonl"),
        read_routellm_mt_bench,
    ),
    "zeroeval/gsm8k": ("zeroeval_gsm8k", ("prompts.jsonl", "outcomes.csv"), read_zeroeval_gsm8k),
}
