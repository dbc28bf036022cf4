"""One contract for every store backend: what the storage activities rely on.

The embedded backends always run (pgvector and the PostgreSQL graph on the suite's
PostgreSQL, the local blob store on a temporary directory). Weaviate, Neo4j and GCS
run when their addresses are in the environment, and are skipped otherwise:

    HEYSH_TEST_WEAVIATE_URL=http://127.0.0.1:8080   (HEYSH_TEST_WEAVIATE_API_KEY)
    HEYSH_TEST_NEO4J_URL=neo4j://127.0.0.1:7687     (HEYSH_TEST_NEO4J_USER, _PASSWORD)
    HEYSH_TEST_GCS_URL=gs://bucket/prefix           (application default credentials)
"""

import math
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestration.blobs import BlobNotFoundError, BlobStore, open_blob_store
from orchestration.config import Settings
from orchestration.models import (
    Analysis,
    AnalysisResult,
    Chunk,
    DocumentRef,
    DocumentStatus,
    ExtractedText,
    KeyPhrase,
    MediaType,
    ModelInfo,
    SyncInput,
)
from storage_tier.activities import StorageActivities
from storage_tier.backends import Stores, open_stores
from storage_tier.documents import IncompleteIndexError
from storage_tier.graph import SimilarDocument

WEAVIATE_URL = "HEYSH_TEST_WEAVIATE_URL"
NEO4J_URL = "HEYSH_TEST_NEO4J_URL"
GCS_URL = "HEYSH_TEST_GCS_URL"
DIMENSIONS = 384


def external(backend: str, variable: str, service: str):
    return pytest.param(
        backend,
        id=backend,
        marks=pytest.mark.skipif(
            not os.environ.get(variable),
            reason=f"set {variable} to run the contract against a real {service}",
        ),
    )


VECTOR_BACKENDS = [
    pytest.param("pgvector", id="pgvector"),
    external("weaviate", WEAVIATE_URL, "Weaviate"),
]
GRAPH_BACKENDS = [
    pytest.param("postgres", id="postgres"),
    external("neo4j", NEO4J_URL, "Neo4j"),
]
BLOB_BACKENDS = [pytest.param("local", id="local"), external("gcs", GCS_URL, "GCS")]


def toward_first_axis(cosine: float) -> list[float]:
    """A unit vector whose cosine similarity to the first axis is `cosine`."""
    vector = [0.0] * DIMENSIONS
    vector[0] = cosine
    vector[1] = math.sqrt(1.0 - cosine**2)
    return vector


QUERY = toward_first_axis(1.0)


def analysis_of(
    document_id: str, version: str, cosines: list[float], phrases: Sequence[str] = ()
) -> Analysis:
    return Analysis(
        document_id=document_id,
        model=ModelInfo(name="contract-embedder", version=version),
        dimensions=DIMENSIONS,
        chunks=[
            Chunk(
                index=index,
                text=f"chunk {index} of {document_id} ({version})",
                start=index * 100,
                end=index * 100 + 99,
                embedding=toward_first_axis(cosine),
            )
            for index, cosine in enumerate(cosines)
        ],
        key_phrases=[
            KeyPhrase(
                phrase=phrase,
                score=1.0 - rank / 10,
                chunk_indexes=[i for i in range(len(cosines)) if i % 2 == rank % 2],
            )
            for rank, phrase in enumerate(phrases)
        ],
    )


def sync_input(ref: DocumentRef, analysis: Analysis, claimed: int) -> SyncInput:
    return SyncInput(
        ref=ref,
        media_type=MediaType.TEXT,
        extracted=ExtractedText(text_uri="file:///contract.txt", chars=1000),
        analysis=AnalysisResult(
            analysis_uri="file:///contract.json",
            chunk_count=claimed,
            key_phrases=[phrase.phrase for phrase in analysis.key_phrases],
            embedding_model=analysis.model,
        ),
        summary=None,
        workflow_id="contract",
        duration_s=0.5,
    )


@dataclass
class Contract:
    """Stores under test, and the documents a test made in them."""

    stores: Stores
    refs: list[DocumentRef] = field(default_factory=list)

    @property
    def activities(self) -> StorageActivities:
        s = self.stores
        return StorageActivities(s.blobs, s.documents, s.vectors, s.graph)

    async def new_document(self, name: str = "contract.txt") -> DocumentRef:
        digest = uuid.uuid4().hex
        ref = DocumentRef(
            document_id=digest[:24],
            name=f"{digest[:6]}-{name}",
            blob_uri="file:///contract.txt",
            content_hash=digest,
            size_bytes=1000,
        )
        await self.stores.documents.register(ref)
        self.refs.append(ref)
        return ref

    async def complete(self, ref: DocumentRef, analysis: Analysis) -> None:
        await self.activities.sync_database(
            sync_input(ref, analysis, len(analysis.chunks))
        )


def backend_settings(settings: Settings, tmp_path: Path, **chosen: str) -> Settings:
    neo4j_password = os.environ.get("HEYSH_TEST_NEO4J_PASSWORD")
    weaviate_api_key = os.environ.get("HEYSH_TEST_WEAVIATE_API_KEY")
    return Settings(
        state_dir=settings.state_dir,
        database_url=settings.database_url,
        blob_url=tmp_path.as_uri(),
        weaviate_url=os.environ.get(WEAVIATE_URL),
        weaviate_api_key=weaviate_api_key,
        weaviate_collection=f"HeyshContract{uuid.uuid4().hex[:8]}",
        neo4j_url=os.environ.get(NEO4J_URL),
        neo4j_user=os.environ.get("HEYSH_TEST_NEO4J_USER", "neo4j"),
        neo4j_password=neo4j_password,
        **chosen,
    )


@asynccontextmanager
async def contract_for(settings: Settings) -> AsyncIterator[Contract]:
    async with open_stores(settings, pool_size=2) as stores:
        contract = Contract(stores)
        try:
            yield contract
        finally:
            for ref in contract.refs:
                await stores.vectors.delete_document(ref.document_id)
                await stores.graph.delete_document(ref.document_id)
            if settings.vector_backend == "weaviate":
                from storage_tier.weaviate_vectors import WeaviateVectorStore

                assert isinstance(stores.vectors, WeaviateVectorStore)
                await stores.vectors.client.collections.delete(stores.vectors.name)


@pytest.fixture(params=VECTOR_BACKENDS)
async def vectors(
    request: pytest.FixtureRequest, settings: Settings, postgres: str, tmp_path: Path
) -> AsyncIterator[Contract]:
    chosen = backend_settings(settings, tmp_path, vector_backend=request.param)
    async with contract_for(chosen) as contract:
        yield contract


@pytest.fixture(params=GRAPH_BACKENDS)
async def graph(
    request: pytest.FixtureRequest, settings: Settings, postgres: str, tmp_path: Path
) -> AsyncIterator[Contract]:
    chosen = backend_settings(settings, tmp_path, graph_backend=request.param)
    async with contract_for(chosen) as contract:
        yield contract


@pytest.fixture(params=BLOB_BACKENDS)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "gcs":
        base = os.environ[GCS_URL].rstrip("/")
        return open_blob_store(f"{base}/contract-{uuid.uuid4().hex[:12]}")
    return open_blob_store((tmp_path / "blobs").as_uri())


# Vector stores


@pytest.mark.stack
async def test_search_finds_chunks_nearest_first(vectors: Contract) -> None:
    ref = await vectors.new_document()
    analysis = analysis_of(ref.document_id, "contract-v1", [0.3, 1.0, 0.8])
    assert await vectors.stores.vectors.upsert(analysis) == (3, 0)
    await vectors.complete(ref, analysis)

    hits = await vectors.stores.vectors.search(
        QUERY, "contract-v1", limit=3, document_ids=[ref.document_id]
    )

    assert [hit.chunk_index for hit in hits] == [1, 2, 0]
    assert [hit.score for hit in hits] == pytest.approx([1.0, 0.8, 0.3], abs=1e-3)
    assert {hit.document_name for hit in hits} == {ref.name}
    assert hits[0].text == analysis.chunks[1].text
    top = await vectors.stores.vectors.search(
        QUERY, "contract-v1", limit=1, document_ids=[ref.document_id]
    )
    assert [hit.chunk_index for hit in top] == [1]


@pytest.mark.stack
async def test_search_skips_documents_not_completed(vectors: Contract) -> None:
    ref = await vectors.new_document()
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.5])
    await vectors.stores.vectors.upsert(analysis)

    assert (
        await vectors.stores.vectors.search(
            QUERY, "contract-v1", document_ids=[ref.document_id]
        )
        == []
    )
    await vectors.complete(ref, analysis)
    assert (
        len(
            await vectors.stores.vectors.search(
                QUERY, "contract-v1", document_ids=[ref.document_id]
            )
        )
        == 2
    )


@pytest.mark.stack
async def test_search_filters_by_document(vectors: Contract) -> None:
    first, second = await vectors.new_document(), await vectors.new_document()
    for ref in (first, second):
        analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.5])
        await vectors.stores.vectors.upsert(analysis)
        await vectors.complete(ref, analysis)
    store = vectors.stores.vectors

    only_first = await store.search(QUERY, "contract-v1", 10, [first.document_id])
    both = await store.search(
        QUERY, "contract-v1", 10, [first.document_id, second.document_id]
    )

    assert {hit.document_id for hit in only_first} == {first.document_id}
    assert {hit.document_id for hit in both} == {first.document_id, second.document_id}
    assert len(both) == 4
    assert await store.search(QUERY, "contract-v1", 10, []) == []


@pytest.mark.stack
async def test_upserting_twice_changes_nothing(vectors: Contract) -> None:
    ref = await vectors.new_document()
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3])
    store = vectors.stores.vectors

    assert await store.upsert(analysis) == (3, 0)
    assert await store.upsert(analysis) == (3, 0)

    assert await store.count(ref.document_id, "contract-v1") == 3


@pytest.mark.stack
async def test_fewer_chunks_remove_the_stale_ones(vectors: Contract) -> None:
    ref = await vectors.new_document()
    store = vectors.stores.vectors
    await store.upsert(analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3]))

    shorter = analysis_of(ref.document_id, "contract-v1", [0.9, 0.2])
    assert await store.upsert(shorter) == (2, 1)
    await vectors.complete(ref, shorter)

    assert await store.count(ref.document_id, "contract-v1") == 2
    hits = await store.search(QUERY, "contract-v1", 10, [ref.document_id])
    assert [hit.chunk_index for hit in hits] == [0, 1]
    assert hits[0].score == pytest.approx(0.9, abs=1e-3)


@pytest.mark.stack
async def test_model_versions_stay_apart(vectors: Contract) -> None:
    ref = await vectors.new_document()
    store = vectors.stores.vectors
    old = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3])
    new = analysis_of(ref.document_id, "contract-v2", [0.7, 0.6])
    await store.upsert(old)
    await store.upsert(new)
    await vectors.complete(ref, new)

    assert await store.count(ref.document_id, "contract-v1") == 3
    assert await store.count(ref.document_id, "contract-v2") == 2
    hits = await store.search(QUERY, "contract-v2", 10, [ref.document_id])
    assert [hit.text for hit in hits] == [chunk.text for chunk in new.chunks]

    await store.upsert(analysis_of(ref.document_id, "contract-v2", [0.7]))
    assert await store.count(ref.document_id, "contract-v1") == 3
    assert await store.count(ref.document_id, "contract-v2") == 1


@pytest.mark.stack
async def test_after_a_reindex_only_the_new_version_stays(vectors: Contract) -> None:
    ref = await vectors.new_document()
    store = vectors.stores.vectors
    await store.upsert(analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3]))
    newer = analysis_of(ref.document_id, "contract-v2", [1.0, 0.5])
    await store.upsert(newer)
    await vectors.complete(ref, newer)

    assert await store.delete_other_versions(ref.document_id, "contract-v2") == 3
    assert await store.count(ref.document_id, "contract-v1") == 0
    assert await store.count(ref.document_id, "contract-v2") == 2
    # Done twice, as a retried activity would: nothing more goes.
    assert await store.delete_other_versions(ref.document_id, "contract-v2") == 0


@pytest.mark.stack
async def test_delete_removes_every_version(vectors: Contract) -> None:
    ref = await vectors.new_document()
    store = vectors.stores.vectors
    await store.upsert(analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3]))
    newer = analysis_of(ref.document_id, "contract-v2", [1.0, 0.5])
    await store.upsert(newer)
    await vectors.complete(ref, newer)

    assert await store.delete_document(ref.document_id) == 5

    assert await store.count(ref.document_id, "contract-v1") == 0
    assert await store.count(ref.document_id, "contract-v2") == 0
    assert await store.search(QUERY, "contract-v2", 10, [ref.document_id]) == []
    assert await store.delete_document(ref.document_id) == 0


@pytest.mark.stack
async def test_the_row_is_completed_only_with_every_vector_stored(
    vectors: Contract,
) -> None:
    ref = await vectors.new_document()
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3])
    partial = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8])
    await vectors.stores.vectors.upsert(partial)

    with pytest.raises(IncompleteIndexError):
        await vectors.activities.sync_database(sync_input(ref, analysis, 3))
    row = await vectors.stores.documents.get(ref.document_id)
    assert row is not None and row["status"] == DocumentStatus.PROCESSING

    await vectors.stores.vectors.upsert(analysis)
    first = await vectors.activities.sync_database(sync_input(ref, analysis, 3))
    again = await vectors.activities.sync_database(sync_input(ref, analysis, 3))

    assert first == again
    assert first.status is DocumentStatus.COMPLETED
    row = await vectors.stores.documents.get(ref.document_id)
    assert row is not None
    assert row["status"] == DocumentStatus.COMPLETED and row["chunk_count"] == 3


# Graph stores

PHRASES = ["contract durable execution", "Contract Vector Search", "contract graphs"]


@pytest.mark.stack
async def test_replacing_twice_leaves_the_same_graph(graph: Contract) -> None:
    ref = await graph.new_document()
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3], PHRASES)
    store = graph.stores.graph

    written = await store.replace_document(analysis, ref.name)
    stored = await store.counts(ref.document_id)
    neighbours = await store.neighbours(ref.document_id)
    again = await store.replace_document(analysis, ref.name)

    # 1 document + 3 chunks + 3 phrases; 3 HAS_CHUNK + 3 ABOUT + 5 MENTIONS.
    assert written == again == stored == (7, 11)
    assert await store.counts(ref.document_id) == stored
    assert sorted(await store.neighbours(ref.document_id)) == sorted(neighbours)


@pytest.mark.stack
async def test_neighbours_are_chunks_phrases_and_similar_documents(
    graph: Contract,
) -> None:
    ref, other = await graph.new_document(), await graph.new_document("other.md")
    store = graph.stores.graph
    await store.replace_document(
        analysis_of(other.document_id, "contract-v1", [1.0]), other.name
    )
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.5], PHRASES)

    await store.replace_document(
        analysis,
        ref.name,
        [
            SimilarDocument(other.document_id, "a stale name", 0.7),
            SimilarDocument(ref.document_id, ref.name, 1.0),
        ],
    )
    neighbours = await store.neighbours(ref.document_id)

    about = [label for edge, kind, label in neighbours if edge == "ABOUT"]
    assert about == [phrase.lower() for phrase in PHRASES]
    assert all(kind == "phrase" for edge, kind, _ in neighbours if edge == "ABOUT")
    assert sorted(label for edge, _, label in neighbours if edge == "HAS_CHUNK") == [
        f"{ref.name} #0",
        f"{ref.name} #1",
    ]
    # The other document's node keeps its own name; itself is never similar.
    assert [(k, label) for e, k, label in neighbours if e == "SIMILAR_TO"] == [
        ("document", other.name)
    ]


@pytest.mark.stack
async def test_fewer_chunks_remove_stale_chunk_nodes(graph: Contract) -> None:
    ref = await graph.new_document()
    store = graph.stores.graph
    await store.replace_document(
        analysis_of(ref.document_id, "contract-v1", [1.0, 0.8, 0.3], PHRASES),
        ref.name,
    )

    await store.replace_document(
        analysis_of(ref.document_id, "contract-v1", [1.0, 0.8], PHRASES), ref.name
    )

    # 1 document + 2 chunks + 3 phrases; 2 HAS_CHUNK + 3 ABOUT + 3 MENTIONS.
    assert await store.counts(ref.document_id) == (6, 8)
    chunks = [label for e, _, label in await store.neighbours(ref.document_id)]
    assert f"{ref.name} #2" not in chunks


@pytest.mark.stack
async def test_delete_removes_the_document_from_the_graph(graph: Contract) -> None:
    ref = await graph.new_document()
    store = graph.stores.graph
    analysis = analysis_of(ref.document_id, "contract-v1", [1.0, 0.8], PHRASES)
    await store.replace_document(analysis, ref.name)

    await store.delete_document(ref.document_id)

    assert await store.counts(ref.document_id) == (0, 0)
    assert await store.neighbours(ref.document_id) == []


# Blob stores


def test_blobs_round_trip(blobs: BlobStore) -> None:
    uri = blobs.put("text/contract.txt", b"hello, durable world")

    assert uri == blobs.uri_for("text/contract.txt")
    assert blobs.read(uri) == b"hello, durable world"
    assert blobs.size(uri) == len(b"hello, durable world")


def test_blobs_overwrite(blobs: BlobStore) -> None:
    blobs.put("analysis/doc/v1.json", b"first and longer")
    uri = blobs.put("analysis/doc/v1.json", b"second")

    assert blobs.read(uri) == b"second"
    assert blobs.size(uri) == len(b"second")


@pytest.mark.parametrize(
    "call", [lambda store, uri: store.read(uri), lambda store, uri: store.size(uri)]
)
def test_a_missing_blob_is_named(
    blobs: BlobStore, call: Callable[[BlobStore, str], object]
) -> None:
    uri = blobs.uri_for("documents/no/such-blob")

    with pytest.raises(BlobNotFoundError, match="no blob at"):
        call(blobs, uri)


async def test_blobs_round_trip_without_blocking(blobs: BlobStore) -> None:
    uri = await blobs.aput("documents/ab/abcdef", b"\x00\x01 bytes")

    assert await blobs.aread(uri) == b"\x00\x01 bytes"


@pytest.mark.parametrize("key", ["../outside", "text/../../outside"])
def test_a_key_cannot_leave_the_store(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="escapes"):
        blobs.put(key, b"x")
