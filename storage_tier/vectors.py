"""Vector stores: the interface, and chunk embeddings in pgvector."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from orchestration.models import Analysis


@dataclass(frozen=True)
class SearchHit:
    document_id: str
    document_name: str
    chunk_index: int
    text: str
    score: float


class VectorStore(Protocol):
    """Chunk embeddings keyed by document, model version and chunk position.

    Writing the same analysis again rewrites the same entries, so a retried activity
    changes nothing. Search compares vectors of one model version only (scores from two
    models are not comparable) and returns chunks of completed documents only, with
    their names; the score is the cosine similarity, highest first.
    """

    async def upsert(self, analysis: Analysis) -> tuple[int, int]:
        """Write every chunk of the analysis and drop the chunks of the same document
        and model version that it no longer has. Returns (written, stale removed)."""
        ...

    async def delete_document(self, document_id: str) -> int:
        """Remove the document's chunks of every model version; returns how many."""
        ...

    async def delete_other_versions(self, document_id: str, model_version: str) -> int:
        """Remove the document's chunks of every model version but this one, once it
        has been embedded again; returns how many."""
        ...

    async def count(self, document_id: str, model_version: str) -> int: ...

    async def search(
        self,
        vector: Sequence[float],
        model_version: str,
        limit: int = 5,
        document_ids: Collection[str] | None = None,
    ) -> list[SearchHit]:
        """Nearest chunks, optionally among the given documents only."""
        ...


class PgVectorStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(self, analysis: Analysis) -> tuple[int, int]:
        """Keyed upserts in one transaction: a retry rewrites the same rows."""
        rows = [
            (
                analysis.document_id,
                analysis.model.version,
                chunk.index,
                analysis.model.name,
                chunk.text,
                chunk.start,
                chunk.end,
                chunk.embedding,
            )
            for chunk in analysis.chunks
        ]
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                """
                INSERT INTO chunks (document_id, model_version, chunk_index,
                                    model_name, body, start_char, end_char, embedding)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (document_id, model_version, chunk_index) DO UPDATE
                SET model_name = EXCLUDED.model_name, body = EXCLUDED.body,
                    start_char = EXCLUDED.start_char, end_char = EXCLUDED.end_char,
                    embedding = EXCLUDED.embedding
                """,
                rows,
            )
            removed = await connection.fetchval(
                """
                WITH gone AS (
                    DELETE FROM chunks
                    WHERE document_id = $1 AND model_version = $2 AND chunk_index >= $3
                    RETURNING 1
                )
                SELECT count(*) FROM gone
                """,
                analysis.document_id,
                analysis.model.version,
                len(rows),
            )
        return len(rows), removed

    async def delete_document(self, document_id: str) -> int:
        return await self.pool.fetchval(
            """
            WITH gone AS (DELETE FROM chunks WHERE document_id = $1 RETURNING 1)
            SELECT count(*) FROM gone
            """,
            document_id,
        )

    async def delete_other_versions(self, document_id: str, model_version: str) -> int:
        return await self.pool.fetchval(
            """
            WITH gone AS (
                DELETE FROM chunks WHERE document_id = $1 AND model_version <> $2
                RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            document_id,
            model_version,
        )

    async def count(self, document_id: str, model_version: str) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM chunks WHERE document_id = $1 AND model_version = $2",
            document_id,
            model_version,
        )

    async def search(
        self,
        vector: Sequence[float],
        model_version: str,
        limit: int = 5,
        document_ids: Collection[str] | None = None,
    ) -> list[SearchHit]:
        """Nearest chunks by cosine distance (known limit: needs pgvector 0.8 or later,
        for iterative index scans)."""
        async with self.pool.acquire() as connection, connection.transaction():
            # The HNSW scan yields its candidates before the WHERE clause filters them;
            # without iterative scans a selective filter (one document, a rare model
            # version) would return fewer than `limit` hits, or none.
            await connection.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            rows = await connection.fetch(
                """
                SELECT c.document_id, d.name, c.chunk_index, c.body,
                       1 - (c.embedding <=> $1) AS score
                FROM chunks c JOIN documents d ON d.id = c.document_id
                WHERE c.model_version = $2 AND d.status = 'completed'
                  AND ($4::text[] IS NULL OR c.document_id = ANY($4::text[]))
                ORDER BY c.embedding <=> $1
                LIMIT $3
                """,
                vector,
                model_version,
                limit,
                list(document_ids) if document_ids is not None else None,
            )
        return [
            SearchHit(row[0], row[1], row[2], row[3], float(row[4])) for row in rows
        ]
