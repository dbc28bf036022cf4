"""Document graph in Neo4j, through the official async driver.

Nodes carry the same ids, kinds and labels as in PostgreSQL, with the kind as their
label (`:Document`, `:Chunk`, `:Phrase`), each unique on `id`. Cypher cannot take a
label or a relationship type as a parameter, so every label and type is fixed in the
query text below and every value travels as a parameter.
"""

from collections.abc import Sequence
from typing import Any, LiteralString

from neo4j import AsyncDriver, AsyncManagedTransaction, RoutingControl

from orchestration.models import Analysis
from storage_tier.graph import (
    DocumentGraph,
    SimilarDocument,
    chunk_prefix,
    document_graph,
    document_node,
)

CONSTRAINTS: list[LiteralString] = [
    "CREATE CONSTRAINT heysh_document_id IF NOT EXISTS"
    " FOR (n:Document) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT heysh_chunk_id IF NOT EXISTS"
    " FOR (n:Chunk) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT heysh_phrase_id IF NOT EXISTS"
    " FOR (n:Phrase) REQUIRE n.id IS UNIQUE",
]

DELETE_STALE_CHUNKS: LiteralString = """
MATCH (c:Chunk) WHERE c.id STARTS WITH $chunk_prefix AND NOT c.id IN $chunk_ids
DETACH DELETE c
"""

DELETE_LEAVING_EDGES: LiteralString = """
MATCH (:Document {id: $document})-[r]->() DELETE r
"""

DELETE_CHUNK_EDGES: LiteralString = """
MATCH (c:Chunk)-[r]->() WHERE c.id STARTS WITH $chunk_prefix DELETE r
"""

NODE_UPSERTS: dict[str, LiteralString] = {
    "document": """
        UNWIND $nodes AS node
        MERGE (n:Document {id: node.id})
        SET n.kind = node.kind, n.label = node.label, n += node.properties
    """,
    "chunk": """
        UNWIND $nodes AS node
        MERGE (n:Chunk {id: node.id})
        SET n.kind = node.kind, n.label = node.label, n += node.properties
    """,
    "phrase": """
        UNWIND $nodes AS node
        MERGE (n:Phrase {id: node.id})
        SET n.kind = node.kind, n.label = node.label, n += node.properties
    """,
}

# Another document's node is its own document's to write: create it if missing only.
REFERENCE_UPSERT: LiteralString = """
UNWIND $nodes AS node
MERGE (n:Document {id: node.id})
ON CREATE SET n.kind = node.kind, n.label = node.label
"""

EDGE_MERGES: dict[str, LiteralString] = {
    "HAS_CHUNK": """
        UNWIND $edges AS edge
        MATCH (s:Document {id: edge.source})
        MATCH (t:Chunk {id: edge.target})
        MERGE (s)-[r:HAS_CHUNK]->(t) SET r.weight = edge.weight
    """,
    "ABOUT": """
        UNWIND $edges AS edge
        MATCH (s:Document {id: edge.source})
        MATCH (t:Phrase {id: edge.target})
        MERGE (s)-[r:ABOUT]->(t) SET r.weight = edge.weight
    """,
    "MENTIONS": """
        UNWIND $edges AS edge
        MATCH (s:Chunk {id: edge.source})
        MATCH (t:Phrase {id: edge.target})
        MERGE (s)-[r:MENTIONS]->(t) SET r.weight = edge.weight
    """,
    "SIMILAR_TO": """
        UNWIND $edges AS edge
        MATCH (s:Document {id: edge.source})
        MATCH (t:Document {id: edge.target})
        MERGE (s)-[r:SIMILAR_TO]->(t) SET r.weight = edge.weight
    """,
}

NEIGHBOURS: LiteralString = """
MATCH (:Document {id: $document})-[r]->(n)
RETURN type(r) AS edge, n.kind AS kind, n.label AS label
ORDER BY edge, r.weight DESC
"""

# Aggregates without a grouping key: one row even when nothing matched.
DOCUMENT_REACH: LiteralString = """
OPTIONAL MATCH (d:Document {id: $document})
OPTIONAL MATCH (d)-[r]->(n)
RETURN count(DISTINCT d) AS found, count(r) AS edges,
       collect(DISTINCT n.id) AS reached
"""

CHUNK_REACH: LiteralString = """
MATCH (c:Chunk) WHERE c.id STARTS WITH $chunk_prefix
OPTIONAL MATCH (c)-[r]->(n)
RETURN count(r) AS edges, collect(DISTINCT c.id) + collect(DISTINCT n.id) AS reached
"""

DELETE_CHUNKS: LiteralString = """
MATCH (c:Chunk) WHERE c.id STARTS WITH $chunk_prefix DETACH DELETE c
"""

DELETE_DOCUMENT: LiteralString = """
MATCH (d:Document {id: $document}) DETACH DELETE d
"""


def write_statements(
    graph: DocumentGraph,
) -> list[tuple[LiteralString, dict[str, Any]]]:
    """The statements, in order, that make the document's part of the graph what
    `graph` says: stale chunks and every edge leaving the document go first, then
    nodes and edges are merged on their keys."""
    doc = document_node(graph.document_id)
    prefix = chunk_prefix(graph.document_id)
    statements: list[tuple[LiteralString, dict[str, Any]]] = [
        (DELETE_STALE_CHUNKS, {"chunk_prefix": prefix, "chunk_ids": graph.chunk_ids}),
        (DELETE_LEAVING_EDGES, {"document": doc}),
        (DELETE_CHUNK_EDGES, {"chunk_prefix": prefix}),
    ]
    for kind, query in NODE_UPSERTS.items():
        nodes = [
            {
                "id": node.id,
                "kind": node.kind,
                "label": node.label,
                "properties": node.properties,
            }
            for node in graph.nodes
            if node.kind == kind
        ]
        if nodes:
            statements.append((query, {"nodes": nodes}))
    if graph.references:
        references = [
            {"id": node.id, "kind": node.kind, "label": node.label}
            for node in graph.references
        ]
        statements.append((REFERENCE_UPSERT, {"nodes": references}))
    for kind, query in EDGE_MERGES.items():
        edges = [
            {"source": edge.source, "target": edge.target, "weight": edge.weight}
            for edge in graph.edges
            if edge.kind == kind
        ]
        if edges:
            statements.append((query, {"edges": edges}))
    return statements


class Neo4jGraphStore:
    def __init__(self, driver: AsyncDriver, database: str | None = None) -> None:
        self.driver = driver
        self.database = database

    async def create_constraints(self) -> None:
        """Idempotent; schema commands run in transactions of their own."""
        for constraint in CONSTRAINTS:
            await self.driver.execute_query(constraint, database_=self.database)

    async def replace_document(
        self, analysis: Analysis, name: str, similar: Sequence[SimilarDocument] = ()
    ) -> tuple[int, int]:
        graph = document_graph(analysis, name, similar)
        async with self.driver.session(database=self.database) as session:
            await session.execute_write(_run_all, write_statements(graph))
        return graph.counts

    async def neighbours(self, document_id: str) -> list[tuple[str, str, str]]:
        result = await self.driver.execute_query(
            NEIGHBOURS,
            {"document": document_node(document_id)},
            routing_=RoutingControl.READ,
            database_=self.database,
        )
        return [
            (record["edge"], record["kind"], record["label"])
            for record in result.records
        ]

    async def counts(self, document_id: str) -> tuple[int, int]:
        parameters = {
            "document": document_node(document_id),
            "chunk_prefix": chunk_prefix(document_id),
        }
        document = await self._read_one(DOCUMENT_REACH, parameters)
        chunks = await self._read_one(CHUNK_REACH, parameters)
        nodes = set(document["reached"]) | set(chunks["reached"])
        if document["found"]:
            nodes.add(parameters["document"])
        return len(nodes), document["edges"] + chunks["edges"]

    async def delete_document(self, document_id: str) -> None:
        statements: list[tuple[LiteralString, dict[str, Any]]] = [
            (DELETE_CHUNKS, {"chunk_prefix": chunk_prefix(document_id)}),
            (DELETE_DOCUMENT, {"document": document_node(document_id)}),
        ]
        async with self.driver.session(database=self.database) as session:
            await session.execute_write(_run_all, statements)

    async def _read_one(
        self, query: LiteralString, parameters: dict[str, Any]
    ) -> dict[str, Any]:
        result = await self.driver.execute_query(
            query, parameters, routing_=RoutingControl.READ, database_=self.database
        )
        return result.records[0].data()


async def _run_all(
    tx: AsyncManagedTransaction,
    statements: list[tuple[LiteralString, dict[str, Any]]],
) -> None:
    for query, parameters in statements:
        result = await tx.run(query, parameters)
        await result.consume()
