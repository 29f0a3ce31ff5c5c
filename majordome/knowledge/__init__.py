"""The knowledge base: documents in, tenant-isolated retrieval out (Qdrant + sentence-transformers).

:class:`KnowledgeBase` is the entry point (ingest, search, delete); the pieces it assembles are
importable for other uses: embedders (shared with the router), the document model and chunker,
the readers, the BM25 analysis and the vector stores.
"""

from majordome.knowledge.base import Hit, IngestSummary, KnowledgeBase, default_embedder
from majordome.knowledge.chunking import Chunker
from majordome.knowledge.documents import SHARED, Chunk, Document, Kind, Performance
from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder, StaticEmbedder
from majordome.knowledge.sources import IngestReport, documents_from_objects, read_path
from majordome.knowledge.store import SearchFilters

__all__ = [
    "SHARED",
    "Chunk",
    "Chunker",
    "Document",
    "Embedder",
    "Hit",
    "IngestReport",
    "IngestSummary",
    "Kind",
    "KnowledgeBase",
    "Performance",
    "SearchFilters",
    "SentenceTransformerEmbedder",
    "StaticEmbedder",
    "default_embedder",
    "documents_from_objects",
    "read_path",
]
