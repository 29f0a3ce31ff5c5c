"""The knowledge base: embeddings (shared with the router), and — as its issue lands — ingestion,
chunking, the vector store and grounded retrieval."""

from majordome.knowledge.embeddings import Embedder, SentenceTransformerEmbedder, StaticEmbedder

__all__ = ["Embedder", "SentenceTransformerEmbedder", "StaticEmbedder"]
