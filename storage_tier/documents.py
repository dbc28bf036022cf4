"""Document rows: registration, extracted text, the final state and failures."""

from collections.abc import Collection

import asyncpg

from orchestration.models import (
    AnalysisResult,
    DocumentRef,
    DocumentResult,
    DocumentStatus,
    SyncInput,
)


class IncompleteIndexError(Exception):
    """The vectors a document is about to be marked complete with are not all there."""


class DocumentRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def register(self, ref: DocumentRef) -> str | None:
        """Upsert the document's row and claim its content hash.

        Returns the id of another document that already holds the same content, if any.
        A finished document keeps its status: registering it again changes nothing.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """
                INSERT INTO documents (id, name, content_hash, blob_uri, size_bytes)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (id) DO UPDATE
                SET blob_uri = EXCLUDED.blob_uri,
                    status = CASE WHEN documents.status = 'failed'
                                  THEN 'processing' ELSE documents.status END,
                    error_type = CASE WHEN documents.status = 'failed'
                                      THEN NULL ELSE documents.error_type END,
                    error_message = CASE WHEN documents.status = 'failed'
                                         THEN NULL ELSE documents.error_message END,
                    updated_at = now()
                """,
                ref.document_id,
                ref.name,
                ref.content_hash,
                ref.blob_uri,
                ref.size_bytes,
            )
            await connection.execute(
                """
                INSERT INTO document_contents (content_hash, document_id)
                VALUES ($1, $2) ON CONFLICT (content_hash) DO NOTHING
                """,
                ref.content_hash,
                ref.document_id,
            )
            owner = await connection.fetchval(
                "SELECT document_id FROM document_contents WHERE content_hash = $1",
                ref.content_hash,
            )
        return owner if owner != ref.document_id else None

    async def store_text(
        self,
        document_id: str,
        media_type: str,
        encoding: str | None,
        text: str,
        pages: int | None,
        title: str | None,
    ) -> None:
        await self.pool.execute(
            """
            UPDATE documents
            SET media_type = $2, encoding = $3, body = $4, chars = $5, pages = $6,
                title = $7, updated_at = now()
            WHERE id = $1
            """,
            document_id,
            media_type,
            encoding,
            text,
            len(text),
            pages,
            title,
        )

    async def complete(self, sync: SyncInput, stored_vectors: int) -> DocumentResult:
        """Write the final state, once the vector store holds every vector the
        document claims.

        `stored_vectors` is the configured vector store's count for the document and
        its model version, taken just before. Whatever else writes those vectors (a
        retried indexing still running behind a timeout) writes the same chunks of the
        same analysis, so the count cannot fall between the check and the update.
        Writing the same state again changes nothing.
        """
        analysis = sync.analysis
        summary = sync.summary
        if stored_vectors != analysis.chunk_count:
            raise IncompleteIndexError(
                f"document {sync.ref.document_id} has {stored_vectors} of "
                f"{analysis.chunk_count} vectors stored"
            )
        await self.pool.execute(
            """
            UPDATE documents
            SET status = 'completed', chunk_count = $2, key_phrases = $3,
                summary = $4, embedding_model = $5, embedding_model_version = $6,
                summary_model = $7, summary_model_version = $8, workflow_id = $9,
                duration_s = $10, error_type = NULL, error_message = NULL,
                completed_at = now(), updated_at = now()
            WHERE id = $1
            """,
            sync.ref.document_id,
            analysis.chunk_count,
            analysis.key_phrases,
            summary.summary if summary else None,
            analysis.embedding_model.name,
            analysis.embedding_model.version,
            summary.model.name if summary else None,
            summary.model.version if summary else None,
            sync.workflow_id,
            sync.duration_s,
        )
        return DocumentResult(
            document_id=sync.ref.document_id,
            name=sync.ref.name,
            status=DocumentStatus.COMPLETED,
            media_type=sync.media_type,
            size_bytes=sync.ref.size_bytes,
            pages=sync.extracted.pages,
            chars=sync.extracted.chars,
            chunk_count=analysis.chunk_count,
            key_phrases=analysis.key_phrases,
            summary=summary.summary if summary else None,
            embedding_model=analysis.embedding_model,
            summary_model=summary.model if summary else None,
            duration_s=sync.duration_s,
        )

    async def fail(self, document_id: str, error_type: str, message: str) -> None:
        """Record the failure and release the content hash, so the same bytes can be
        submitted again once the problem is fixed."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """
                UPDATE documents
                SET status = 'failed', error_type = $2, error_message = $3,
                    updated_at = now()
                WHERE id = $1
                """,
                document_id,
                error_type,
                message[:2000],
            )
            await connection.execute(
                "DELETE FROM document_contents WHERE document_id = $1", document_id
            )

    async def record_undelivered(
        self, document_id: str, status: str, error: str
    ) -> None:
        await self.pool.execute(
            """
            INSERT INTO notifications (document_id, status, delivered, error)
            VALUES ($1, $2, false, $3)
            ON CONFLICT (document_id, status) DO UPDATE
            SET delivered = false, error = EXCLUDED.error, updated_at = now()
            """,
            document_id,
            status,
            error[:2000],
        )

    async def completed_names(self, document_ids: Collection[str]) -> dict[str, str]:
        """Names of those documents that are completed, by id."""
        rows = await self.pool.fetch(
            """
            SELECT id, name FROM documents
            WHERE id = ANY($1::text[]) AND status = 'completed'
            """,
            list(document_ids),
        )
        return {row["id"]: row["name"] for row in rows}

    async def stale(
        self, model_version: str, after_document_id: str, limit: int
    ) -> list[str]:
        """Completed documents whose vectors another embedding model version made,
        in id order after a cursor."""
        rows = await self.pool.fetch(
            """
            SELECT id FROM documents
            WHERE status = 'completed'
              AND embedding_model_version IS DISTINCT FROM $1
              AND id > $2
            ORDER BY id
            LIMIT $3
            """,
            model_version,
            after_document_id,
            limit,
        )
        return [row["id"] for row in rows]

    async def reindexed(
        self, document_id: str, analysis: AnalysisResult, stored_vectors: int
    ) -> None:
        """Point the row at its new vectors, once the store holds all of them."""
        if stored_vectors != analysis.chunk_count:
            raise IncompleteIndexError(
                f"document {document_id} has {stored_vectors} of "
                f"{analysis.chunk_count} vectors of the new version stored"
            )
        await self.pool.execute(
            """
            UPDATE documents
            SET chunk_count = $2, key_phrases = $3, embedding_model = $4,
                embedding_model_version = $5, updated_at = now()
            WHERE id = $1
            """,
            document_id,
            analysis.chunk_count,
            analysis.key_phrases,
            analysis.embedding_model.name,
            analysis.embedding_model.version,
        )

    async def get(self, document_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM documents WHERE id = $1", document_id
        )
