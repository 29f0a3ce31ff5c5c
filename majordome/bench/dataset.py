"""The one object every routing benchmark reads: outcomes as prompt × model matrices.

A :class:`Dataset` holds, for ``n`` prompts and ``m`` models, the score each model got on each
prompt (in [0, 1]; NaN where the model was not run), the cost of that call in USD (NaN where
unknown: then :func:`majordome.bench.cost.fill_costs` derives it from tokens and a price map),
and token counts when the source has them. ``problems`` lists what was wrong with the source and
how it was handled (duplicates merged, rows dropped...): readers report, they never keep bad data
silently. ``groups`` carries a per-prompt label where the source has one (MMLU subject, MT-Bench
category), for per-group reports. ``clusters`` names prompts that are not independent (MT-Bench's
two turns of one question: turn 2's prompt contains turn 1's): splits keep a cluster on one side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from majordome.router.outcomes import OutcomeTable

__all__ = ["Dataset"]


@dataclass
class Dataset:
    name: str
    prompt_ids: list[str]
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # (n, m) in [0, 1], NaN = not run
    cost_usd: np.ndarray  # (n, m) USD per call, NaN = unknown
    input_tokens: np.ndarray | None = None  # (n, m) or None
    output_tokens: np.ndarray | None = None  # (n, m) or None
    groups: list[str] | None = None  # one label per prompt, or None
    problems: list[str] = field(default_factory=list)
    clusters: list[str] | None = None  # prompts that must stay on one side of a split, or None

    def __post_init__(self) -> None:
        n, m = len(self.prompt_ids), len(self.models)
        if len(self.prompts) != n:
            raise ValueError(f"{self.name}: {len(self.prompts)} prompts for {n} prompt ids")
        for label, array in (
            ("scores", self.scores),
            ("cost_usd", self.cost_usd),
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
        ):
            if array is not None and array.shape != (n, m):
                raise ValueError(f"{self.name}: {label} has shape {array.shape}, expected {(n, m)}")
        if self.groups is not None and len(self.groups) != n:
            raise ValueError(f"{self.name}: {len(self.groups)} group labels for {n} prompts")
        if self.clusters is not None and len(self.clusters) != n:
            raise ValueError(f"{self.name}: {len(self.clusters)} cluster labels for {n} prompts")

    @property
    def size(self) -> int:
        return len(self.prompt_ids)

    def take(self, rows: Sequence[int] | np.ndarray, name: str | None = None) -> Dataset:
        """The dataset restricted to ``rows`` (problems are kept: they describe the source)."""
        index = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            name=name or self.name,
            prompt_ids=[self.prompt_ids[i] for i in index],
            prompts=[self.prompts[i] for i in index],
            scores=self.scores[index],
            cost_usd=self.cost_usd[index],
            input_tokens=None if self.input_tokens is None else self.input_tokens[index],
            output_tokens=None if self.output_tokens is None else self.output_tokens[index],
            groups=None if self.groups is None else [self.groups[i] for i in index],
            problems=list(self.problems),
            clusters=None if self.clusters is None else [self.clusters[i] for i in index],
        )

    def select_models(self, models: Sequence[str]) -> Dataset:
        """The dataset with only ``models`` (in that order)."""
        columns = [self.models.index(m) for m in models]
        return replace(
            self,
            models=list(models),
            scores=self.scores[:, columns],
            cost_usd=self.cost_usd[:, columns],
            input_tokens=None if self.input_tokens is None else self.input_tokens[:, columns],
            output_tokens=None if self.output_tokens is None else self.output_tokens[:, columns],
            problems=list(self.problems),
        )

    def complete_rows(self) -> np.ndarray:
        """Indices of prompts with a score for every model."""
        return np.where(~np.isnan(self.scores).any(axis=1))[0]

    def outcome_table(self) -> OutcomeTable:
        """The same data as the router's :class:`OutcomeTable` (for training quality models)."""
        tokens = self.output_tokens if self.output_tokens is not None else np.full(self.scores.shape, np.nan)
        return OutcomeTable(
            prompt_ids=list(self.prompt_ids),
            prompts=list(self.prompts),
            models=list(self.models),
            scores=self.scores,
            output_tokens=tokens,
            cost_usd=self.cost_usd,
        )
