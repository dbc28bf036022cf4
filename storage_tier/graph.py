"""Document graph in PostgreSQL: document, chunk and key-phrase nodes and their edges.

    document -HAS_CHUNK-> chunk -MENTIONS-> phrase
    document -ABOUT(score)-> phrase

Phrase nodes are shared, so two documents about the same thing meet at a phrase.
"""

import json

import asyncpg

from orchestration.models import Analysis


def document_node(document_id: str) -> str:
    return f"document:{document_id}"


def chunk_node(document_id: str, index: int) -> str:
    return f"chunk:{document_id}:{index}"


def phrase_node(phrase: str) -> str:
    return f"phrase:{phrase.lower()}"


class PgGraphStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def replace_document(self, analysis: Analysis, name: str) -> tuple[int, int]:
        """Make the document's part of the graph exactly what the analysis says.

        One transaction: the document's outgoing edges are rewritten, so a retry or a
        re-analysis leaves no stale or doubled edge. Returns (nodes, edges) written.
        """
        doc = document_node(analysis.document_id)
        nodes = [(doc, "document", name, json.dumps({"model": str(analysis.model)}))]
        edges: list[tuple[str, str, str, float]] = []
        for chunk in analysis.chunks:
            node = chunk_node(analysis.document_id, chunk.index)
            nodes.append((node, "chunk", f"{name} #{chunk.index}", "{}"))
            edges.append((doc, node, "HAS_CHUNK", 1.0))
        for phrase in analysis.key_phrases:
            node = phrase_node(phrase.phrase)
            nodes.append((node, "phrase", phrase.phrase.lower(), "{}"))
            edges.append((doc, node, "ABOUT", phrase.score))
            edges.extend(
                (chunk_node(analysis.document_id, index), node, "MENTIONS", 1.0)
                for index in phrase.chunk_indexes
            )

        async with self.pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                """
                INSERT INTO graph_nodes (id, kind, label, properties)
                VALUES ($1, $2, $3, $4::text::jsonb)
                ON CONFLICT (id) DO UPDATE
                SET label = EXCLUDED.label, properties = EXCLUDED.properties
                """,
                nodes,
            )
            await connection.execute(
                """
                DELETE FROM graph_nodes
                WHERE kind = 'chunk' AND id LIKE $1 AND NOT (id = ANY($2::text[]))
                """,
                f"chunk:{analysis.document_id}:%",
                [node[0] for node in nodes if node[1] == "chunk"],
            )
            await connection.execute(
                """
                DELETE FROM graph_edges
                WHERE source_id = $1 OR source_id LIKE $2
                """,
                doc,
                f"chunk:{analysis.document_id}:%",
            )
            await connection.executemany(
                """
                INSERT INTO graph_edges (source_id, target_id, kind, weight)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (source_id, target_id, kind) DO UPDATE
                SET weight = EXCLUDED.weight
                """,
                edges,
            )
        return len(nodes), len(edges)

    async def neighbours(self, document_id: str) -> list[tuple[str, str, str]]:
        """(edge kind, node kind, label) of everything one hop from the document."""
        rows = await self.pool.fetch(
            """
            SELECT e.kind, n.kind, n.label
            FROM graph_edges e JOIN graph_nodes n ON n.id = e.target_id
            WHERE e.source_id = $1
            ORDER BY e.kind, e.weight DESC
            """,
            document_node(document_id),
        )
        return [(row[0], row[1], row[2]) for row in rows]
