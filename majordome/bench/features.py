"""Prompt features for the benchmarks, computed as the live router computes them, cached on disk.

Every prompt of a dataset goes through the router's understanding (static embedding, intent
probabilities, language, length) once; the result is kept in ``MAJORDOME_CACHE_DIR/bench``,
keyed by the texts, the embedder and the classifier, so reruns skip it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from majordome.knowledge.embeddings import cache_dir
from majordome.router.quality import QualityInputs
from majordome.router.router import Router
from majordome.router.text_features import FEATURES_VERSION

__all__ = ["featurize"]


def _key(router: Router, texts: Sequence[str]) -> str:
    components = router.components
    digest = hashlib.sha256()
    digest.update(f"{components.embedder.name if components.embedder else None}|".encode())
    digest.update(f"{components.classifier.trained_on}|{FEATURES_VERSION}|".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()[:24]


def featurize(
    texts: Sequence[str],
    router: Router | None = None,
    *,
    directory: Path | None = None,
    batch: int = 512,
    bar: bool = False,
) -> QualityInputs:
    """The router's quality-model inputs for ``texts`` (from the disk cache when present);
    ``bar`` shows a progress bar (tqdm, on stderr) while computing them."""
    router = router or Router()
    directory = directory or cache_dir() / "bench"
    path = directory / f"{_key(router, texts)}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                embeddings = data["embeddings"] if data["embeddings"].size else None
                return QualityInputs(data["intent_probs"], data["languages"], data["log_tokens"], embeddings)
        except (OSError, ValueError, KeyError):
            pass  # rebuilt below
    starts = range(0, len(texts), batch)
    if bar:
        try:
            from tqdm import tqdm

            starts = tqdm(starts, unit="batch", desc="featurising", leave=False)
        except ImportError:
            pass
    parts = [router.inputs_for_texts(texts[start : start + batch]) for start in starts]
    inputs = QualityInputs(
        np.vstack([p.intent_probs for p in parts]),
        np.vstack([p.languages for p in parts]),
        np.concatenate([p.log_tokens for p in parts]),
        None if parts[0].embeddings is None else np.vstack([p.embeddings for p in parts if p.embeddings is not None]),
    )
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(
        tmp,
        intent_probs=inputs.intent_probs,
        languages=inputs.languages,
        log_tokens=inputs.log_tokens,
        embeddings=inputs.embeddings if inputs.embeddings is not None else np.zeros(0),
    )
    tmp.replace(path)
    return inputs
