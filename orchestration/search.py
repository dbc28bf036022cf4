"""Semantic search: embed a query through Serve, find the nearest stored chunks."""

from typing import TYPE_CHECKING

from orchestration.config import Settings

if TYPE_CHECKING:
    from ray_serve.inference_client import InferenceClient
    from storage_tier.vectors import SearchHit, VectorStore


async def search_chunks(
    inference: "InferenceClient", vectors: "VectorStore", query: str, limit: int
) -> "list[SearchHit]":
    """Nearest chunks of completed documents, scored against the query's embedding.

    Only vectors of the embedding model version that embedded the query are compared:
    scores of two model versions mean different things.
    """
    embedded = await inference.embed([query])
    return await vectors.search(embedded.vectors[0], embedded.model.version, limit)


async def search_once(settings: Settings, query: str, limit: int) -> "list[SearchHit]":
    """One search with clients of its own, closed afterwards (the CLI's case)."""
    # Imported here: the AI worker imports orchestration without asyncpg installed.
    from ray_serve.inference_client import InferenceClient
    from storage_tier.backends import open_stores

    inference = InferenceClient(
        settings.serve_url, timeout_s=settings.embedding_timeout_s
    )
    try:
        async with open_stores(settings, pool_size=2) as stores:
            return await search_chunks(inference, stores.vectors, query, limit)
    finally:
        await inference.aclose()
