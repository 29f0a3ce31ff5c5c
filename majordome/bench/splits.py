"""Train/test splits without leakage: identical prompts always land on the same side."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from majordome.bench.dataset import Dataset

__all__ = ["kfold", "prompt_key", "remove_overlap"]

_SPACE = re.compile(r"\s+")


def prompt_key(text: str) -> str:
    """Prompts that differ only by case or white space are the same prompt."""
    return hashlib.sha256(_SPACE.sub(" ", text.strip().lower()).encode("utf-8")).hexdigest()


def kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index pairs covering every prompt once as test. Identical prompts (up to
    case and white space) and prompts of one cluster (``Dataset.clusters``) are grouped, so none
    appears on both sides; the assignment of groups to folds is a seeded permutation."""
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    parent = list(range(dataset.size))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    keys = [[f"text:{prompt_key(p)}"] for p in dataset.prompts]
    if dataset.clusters is not None:
        for index, cluster in enumerate(dataset.clusters):
            keys[index].append(f"cluster:{cluster}")
    for index, labels in enumerate(keys):
        for label in labels:
            parent[root(index)] = root(first.setdefault(label, index))
    groups: dict[int, list[int]] = {}
    for index in range(dataset.size):
        groups.setdefault(root(index), []).append(index)
    order = list(groups.values())
    permutation = np.random.default_rng(seed).permutation(len(order))
    fold_of = np.empty(dataset.size, dtype=np.int64)
    for position, group in enumerate(permutation):
        fold_of[order[group]] = position % k
    return [(np.where(fold_of != f)[0], np.where(fold_of == f)[0]) for f in range(k)]


def remove_overlap(train: Dataset, test: Dataset) -> tuple[Dataset, list[str]]:
    """``test`` without the prompts that also appear in ``train`` (by text or by id), and what
    was removed."""
    train_keys = {prompt_key(p) for p in train.prompts}
    train_ids = set(train.prompt_ids)
    keep = [
        i
        for i, (pid, prompt) in enumerate(zip(test.prompt_ids, test.prompts, strict=True))
        if prompt_key(prompt) not in train_keys and pid not in train_ids
    ]
    removed = test.size - len(keep)
    notes = [f"{removed} test prompt(s) also in the training set were removed"] if removed else []
    return test.take(keep), notes
