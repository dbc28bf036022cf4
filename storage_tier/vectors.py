"""pgvector store: chunk embeddings keyed by document, model version and position."""

from dataclasses import dataclass

import asyncpg

from orchestration.models import Analysis


@dataclass(frozen=True)
class SearchHit:
    document_id: str
    document_name: str
    chunk_index: int
    text: str
    score: float


class PgVectorStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert(self, analysis: Analysis) -> tuple[int, int]:
        """Write every chunk of the analysis and drop chunks it no longer has.

        Returns (vectors written, stale vectors removed). Keyed upserts in one
        transaction: a retry rewrites the same rows.
        """
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

    async def count(self, document_id: str, model_version: str) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM chunks WHERE document_id = $1 AND model_version = $2",
            document_id,
            model_version,
        )

    async def search(
        self, vector: list[float], model_version: str, limit: int = 5
    ) -> list[SearchHit]:
        """Nearest chunks by cosine distance, among vectors of one model version only:
        scores from two models are not comparable."""
        rows = await self.pool.fetch(
            """
            SELECT c.document_id, d.name, c.chunk_index, c.body,
                   1 - (c.embedding <=> $1) AS score
            FROM chunks c JOIN documents d ON d.id = c.document_id
            WHERE c.model_version = $2 AND d.status = 'completed'
            ORDER BY c.embedding <=> $1
            LIMIT $3
            """,
            vector,
            model_version,
            limit,
        )
        return [
            SearchHit(row[0], row[1], row[2], row[3], float(row[4])) for row in rows
        ]
