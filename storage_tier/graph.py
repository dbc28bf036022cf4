"""Document graph: the interface, the nodes and edges of one document, and PostgreSQL.

    document -HAS_CHUNK-> chunk -MENTIONS-> phrase
    document -ABOUT(score)-> phrase
    document -SIMILAR_TO(score)-> document

Phrase nodes are shared, so two documents about the same thing meet at a phrase. Every
backend stores the same node ids, kinds and labels, built here by `document_graph`.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg

from orchestration.models import Analysis


def document_node(document_id: str) -> str:
    return f"document:{document_id}"


def chunk_node(document_id: str, index: int) -> str:
    return f"chunk:{document_id}:{index}"


def chunk_prefix(document_id: str) -> str:
    """What every chunk node id of the document starts with."""
    return f"chunk:{document_id}:"


def phrase_node(phrase: str) -> str:
    return f"phrase:{phrase.lower()}"


@dataclass(frozen=True)
class SimilarDocument:
    document_id: str
    name: str
    score: float


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str
    label: str
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    kind: str
    weight: float = 1.0


@dataclass(frozen=True)
class DocumentGraph:
    """One document's part of the graph.

    `nodes` belong to the document and are written as given; `references` are other
    documents it points at, created when missing and otherwise left to their own
    document's writes.
    """

    document_id: str
    nodes: list[GraphNode]
    references: list[GraphNode]
    edges: list[GraphEdge]

    @property
    def counts(self) -> tuple[int, int]:
        return len(self.nodes) + len(self.references), len(self.edges)

    @property
    def chunk_ids(self) -> list[str]:
        return [node.id for node in self.nodes if node.kind == "chunk"]


def document_graph(
    analysis: Analysis, name: str, similar: Sequence[SimilarDocument] = ()
) -> DocumentGraph:
    """The nodes and edges the analysis says the document has, each once: two phrases
    that differ only in case are one node, and the later score wins, as in a row
    upsert."""
    doc = document_node(analysis.document_id)
    nodes = {doc: GraphNode(doc, "document", name, {"model": str(analysis.model)})}
    edges: dict[tuple[str, str, str], GraphEdge] = {}

    def add_edge(source: str, target: str, kind: str, weight: float = 1.0) -> None:
        edges[(source, target, kind)] = GraphEdge(source, target, kind, weight)

    for chunk in analysis.chunks:
        node = chunk_node(analysis.document_id, chunk.index)
        nodes[node] = GraphNode(node, "chunk", f"{name} #{chunk.index}")
        add_edge(doc, node, "HAS_CHUNK")
    for phrase in analysis.key_phrases:
        node = phrase_node(phrase.phrase)
        nodes[node] = GraphNode(node, "phrase", phrase.phrase.lower())
        add_edge(doc, node, "ABOUT", phrase.score)
        for index in phrase.chunk_indexes:
            add_edge(chunk_node(analysis.document_id, index), node, "MENTIONS")
    references = {}
    for other in similar:
        if other.document_id == analysis.document_id:
            continue
        node = document_node(other.document_id)
        references[node] = GraphNode(node, "document", other.name)
        add_edge(doc, node, "SIMILAR_TO", other.score)
    return DocumentGraph(
        analysis.document_id,
        list(nodes.values()),
        list(references.values()),
        list(edges.values()),
    )


class GraphStore(Protocol):
    """The document graph, written one document at a time."""

    async def replace_document(
        self, analysis: Analysis, name: str, similar: Sequence[SimilarDocument] = ()
    ) -> tuple[int, int]:
        """Make the document's part of the graph exactly what the analysis says, in
        one transaction: a retry or a re-analysis leaves no stale or doubled edge.
        Returns (nodes, edges) written."""
        ...

    async def neighbours(self, document_id: str) -> list[tuple[str, str, str]]:
        """(edge kind, node kind, label) of everything one hop from the document,
        by edge kind, heaviest first."""
        ...

    async def counts(self, document_id: str) -> tuple[int, int]:
        """(nodes, edges) of the document's part of the graph as stored: its node,
        its chunks and every node they point at; the edges leaving them."""
        ...

    async def delete_document(self, document_id: str) -> None:
        """Remove the document's node, its chunks and every edge touching them; shared
        phrase nodes stay."""
        ...


class PgGraphStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def replace_document(
        self, analysis: Analysis, name: str, similar: Sequence[SimilarDocument] = ()
    ) -> tuple[int, int]:
        graph = document_graph(analysis, name, similar)
        doc = document_node(analysis.document_id)
        prefix = chunk_prefix(analysis.document_id)
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.executemany(
                """
                INSERT INTO graph_nodes (id, kind, label, properties)
                VALUES ($1, $2, $3, $4::text::jsonb)
                ON CONFLICT (id) DO UPDATE
                SET label = EXCLUDED.label, properties = EXCLUDED.properties
                """,
                [_node_row(node) for node in graph.nodes],
            )
            await connection.executemany(
                """
                INSERT INTO graph_nodes (id, kind, label, properties)
                VALUES ($1, $2, $3, $4::text::jsonb)
                ON CONFLICT (id) DO NOTHING
                """,
                [_node_row(node) for node in graph.references],
            )
            await connection.execute(
                """
                DELETE FROM graph_nodes
                WHERE kind = 'chunk' AND id LIKE $1 AND NOT (id = ANY($2::text[]))
                """,
                prefix + "%",
                graph.chunk_ids,
            )
            await connection.execute(
                """
                DELETE FROM graph_edges
                WHERE source_id = $1 OR source_id LIKE $2
                """,
                doc,
                prefix + "%",
            )
            await connection.executemany(
                """
                INSERT INTO graph_edges (source_id, target_id, kind, weight)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (source_id, target_id, kind) DO UPDATE
                SET weight = EXCLUDED.weight
                """,
                [(e.source, e.target, e.kind, e.weight) for e in graph.edges],
            )
        return graph.counts

    async def neighbours(self, document_id: str) -> list[tuple[str, str, str]]:
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

    async def counts(self, document_id: str) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            """
            WITH own AS (
                SELECT id FROM graph_nodes WHERE id = $1 OR id LIKE $2
            ), leaving AS (
                SELECT target_id FROM graph_edges
                WHERE source_id = $1 OR source_id LIKE $2
            )
            SELECT (SELECT count(*) FROM (SELECT id FROM own
                                          UNION SELECT target_id FROM leaving) n),
                   (SELECT count(*) FROM leaving)
            """,
            document_node(document_id),
            chunk_prefix(document_id) + "%",
        )
        assert row is not None
        return row[0], row[1]

    async def delete_document(self, document_id: str) -> None:
        # Edges go with their nodes (ON DELETE CASCADE), incoming ones included.
        await self.pool.execute(
            "DELETE FROM graph_nodes WHERE id = $1 OR id LIKE $2",
            document_node(document_id),
            chunk_prefix(document_id) + "%",
        )


def _node_row(node: GraphNode) -> tuple[str, str, str, str]:
    return node.id, node.kind, node.label, json.dumps(node.properties)
