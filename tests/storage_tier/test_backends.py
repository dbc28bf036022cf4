"""Choosing and reaching store backends, and what the Weaviate, Neo4j and GCS stores
send, checked without their servers, on the client libraries' own objects."""

import re
import uuid
from pathlib import Path

import pytest
from google.cloud import storage
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment
from typer.testing import CliRunner
from weaviate.classes.query import Filter
from weaviate.collections.classes.config import _CollectionConfigCreate
from weaviate.util import generate_uuid5

from orchestration.blobs import (
    GcsBlobStore,
    LocalBlobStore,
    analysis_key,
    gcs_location,
    open_blob_store,
)
from orchestration.cli import app
from orchestration.config import Settings
from orchestration.models import (
    Analysis,
    AnalysisResult,
    Chunk,
    DocumentInput,
    DocumentStatus,
    ExtractionInput,
    IndexInput,
    KeyPhrase,
    MediaType,
    ModelInfo,
    SyncInput,
)
from orchestration.queues import Queue
from orchestration.worker import tier_activities
from storage_tier.backends import (
    BackendUnreachableError,
    StoreConfigurationError,
    address_of,
    check_configuration,
    connect_neo4j,
    connect_weaviate,
    open_stores,
    weaviate_address,
)
from storage_tier.graph import SimilarDocument, document_graph
from storage_tier.neo4j_graph import (
    CONSTRAINTS,
    EDGE_MERGES,
    NODE_UPSERTS,
    REFERENCE_UPSERT,
    write_statements,
)
from storage_tier.weaviate_vectors import (
    VECTOR_NAME,
    chunk_filter,
    chunk_object,
    chunk_uuid,
    collection_schema,
)
from tests.conftest import free_port


def small_analysis(document_id: str = "doc1") -> Analysis:
    return Analysis(
        document_id=document_id,
        model=ModelInfo(name="embedder", version="v1"),
        dimensions=2,
        chunks=[
            Chunk(index=i, text=f"chunk {i}", start=i, end=i + 1, embedding=[1.0, 0.0])
            for i in range(3)
        ],
        key_phrases=[
            KeyPhrase(phrase="Durable Execution", score=0.9, chunk_indexes=[0, 2]),
            KeyPhrase(phrase="durable execution", score=0.4, chunk_indexes=[1]),
            KeyPhrase(phrase="vector search", score=0.6, chunk_indexes=[1]),
        ],
    )


# Weaviate


def test_chunk_uuid_is_the_uuid5_of_the_chunk_key() -> None:
    key = "doc1:v1:0"

    assert chunk_uuid("doc1", "v1", 0) == generate_uuid5(key)
    assert chunk_uuid("doc1", "v1", 0) == str(uuid.uuid5(uuid.NAMESPACE_DNS, key))
    assert len({chunk_uuid("doc1", v, i) for v in ("v1", "v2") for i in (0, 1)}) == 4


def test_chunk_objects_carry_their_key_and_the_named_vector() -> None:
    analysis = small_analysis()

    chunk = chunk_object(analysis, analysis.chunks[2])

    assert chunk.uuid == chunk_uuid("doc1", "v1", 2)
    assert chunk.vector == {VECTOR_NAME: [1.0, 0.0]}
    assert chunk.properties == {
        "document_id": "doc1",
        "model_name": "embedder",
        "model_version": "v1",
        "chunk_index": 2,
        "text": "chunk 2",
        "start_char": 2,
        "end_char": 3,
    }


def test_filters_name_documents_version_and_position() -> None:
    combined = chunk_filter("v1", ["b", "a"], from_index=3)

    assert combined.filters == [  # type: ignore[attr-defined]
        Filter.by_property("document_id").contains_any(["a", "b"]),
        Filter.by_property("model_version").equal("v1"),
        Filter.by_property("chunk_index").greater_or_equal(3),
    ]
    assert chunk_filter("v1", ["a"]).filters == [  # type: ignore[attr-defined]
        Filter.by_property("document_id").equal("a"),
        Filter.by_property("model_version").equal("v1"),
    ]
    assert chunk_filter(document_ids=["a"]) == Filter.by_property("document_id").equal(
        "a"
    )


def test_the_collection_has_no_vectorizer_and_explicit_properties() -> None:
    config = _CollectionConfigCreate(**collection_schema("HeyshChunk"))._to_dict()

    assert config["class"] == "HeyshChunk"
    assert config["vectorConfig"] == {
        VECTOR_NAME: {
            "vectorizer": {"none": {}},
            "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "cosine"},
        }
    }
    properties = {p["name"]: p for p in config["properties"]}
    assert set(properties) == {
        "document_id",
        "model_name",
        "model_version",
        "chunk_index",
        "text",
        "start_char",
        "end_char",
    }
    for key in ("document_id", "model_version"):
        assert properties[key]["dataType"] == ["text"]
        assert properties[key]["tokenization"] == "field"
        assert properties[key]["indexFilterable"] is True
    assert properties["chunk_index"]["dataType"] == ["int"]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://weaviate:8080", ("weaviate", 8080, False)),
        ("https://cluster.example.com", ("cluster.example.com", 443, True)),
    ],
)
def test_weaviate_address(url: str, address: tuple[str, int, bool]) -> None:
    assert weaviate_address(url) == address


def test_a_weaviate_url_without_scheme_is_refused() -> None:
    with pytest.raises(StoreConfigurationError, match="HEYSH_WEAVIATE_URL"):
        weaviate_address("weaviate:8080")


# Neo4j


def test_graph_nodes_and_edges_are_written_once() -> None:
    graph = document_graph(
        small_analysis(),
        "doc.md",
        [SimilarDocument("doc2", "other.md", 0.7), SimilarDocument("doc1", "x", 1.0)],
    )

    phrases = [node for node in graph.nodes if node.kind == "phrase"]
    assert [node.id for node in phrases] == [
        "phrase:durable execution",
        "phrase:vector search",
    ]
    about = {e.target: e.weight for e in graph.edges if e.kind == "ABOUT"}
    assert about["phrase:durable execution"] == 0.4  # the later one wins
    assert [node.id for node in graph.references] == ["document:doc2"]
    # document, 3 chunks, 2 phrases, 1 other document; 3 + 2 + 4 + 1 edges.
    assert graph.counts == (7, 10)


def test_cypher_carries_every_value_as_a_parameter() -> None:
    graph = document_graph(
        small_analysis("doc1"), "doc.md", [SimilarDocument("doc2", "other.md", 0.7)]
    )

    statements = write_statements(graph)

    for query, parameters in statements:
        assert set(re.findall(r"\$(\w+)", query)) == set(parameters)
        assert "doc1" not in query and "doc.md" not in query
    queries = [query for query, _ in statements]
    deletes = [query for query in queries if "DELETE" in query]
    assert queries[: len(deletes)] == deletes  # stale parts go first
    assert REFERENCE_UPSERT in queries
    assert [q for q in queries if q in EDGE_MERGES.values()] == list(
        EDGE_MERGES.values()
    )
    written = {node["id"] for q, p in statements if q in NODE_UPSERTS.values()
               for node in p["nodes"]}  # fmt: skip
    assert written == {node.id for node in graph.nodes}


def test_every_kind_has_its_merge_and_every_label_its_constraint() -> None:
    graph = document_graph(
        small_analysis(), "doc.md", [SimilarDocument("doc2", "other.md", 0.7)]
    )

    assert {node.kind for node in graph.nodes} == set(NODE_UPSERTS)
    assert {edge.kind for edge in graph.edges} == set(EDGE_MERGES)
    for label in ("Document", "Chunk", "Phrase"):
        assert any(
            f"(n:{label}) REQUIRE n.id IS UNIQUE" in c and "IF NOT EXISTS" in c
            for c in CONSTRAINTS
        )


# GCS


def test_gcs_keys_map_to_objects_under_the_prefix() -> None:
    client = storage.Client.create_anonymous_client()
    store = GcsBlobStore.from_url("gs://heysh-blobs/prod/", client)

    assert store.uri_for("text/doc.txt") == "gs://heysh-blobs/prod/text/doc.txt"
    assert gcs_location("gs://heysh-blobs/prod/a#b?c") == ("heysh-blobs", "prod/a#b?c")
    with pytest.raises(ValueError, match="escapes"):
        store.uri_for("../other-prefix/x")
    with pytest.raises(ValueError, match="scheme"):
        store.read("file:///etc/hosts")
    with pytest.raises(ValueError, match="incomplete"):
        store.read("gs://heysh-blobs")


def test_the_blob_url_chooses_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an emulator address the client needs no credentials and calls nothing yet.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")

    local = open_blob_store(tmp_path.as_uri())
    bucket = open_blob_store("gs://heysh-blobs/prod")

    assert isinstance(local, LocalBlobStore) and local.root == tmp_path
    assert isinstance(bucket, GcsBlobStore)
    assert (bucket.bucket, bucket.prefix) == ("heysh-blobs", "prod")
    with pytest.raises(ValueError, match="scheme"):
        open_blob_store("s3://elsewhere/blobs")


# Settings


def test_backends_are_chosen_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEYSH_VECTOR_BACKEND", "weaviate")
    monkeypatch.setenv("HEYSH_WEAVIATE_API_KEY", "weaviate-secret")
    monkeypatch.setenv("HEYSH_GRAPH_BACKEND", "neo4j")
    monkeypatch.setenv("HEYSH_NEO4J_PASSWORD", "neo4j-secret")
    monkeypatch.setenv("HEYSH_BLOB_URL", "gs://heysh-blobs/prod")

    settings = Settings(state_dir=tmp_path)

    assert (settings.vector_backend, settings.graph_backend) == ("weaviate", "neo4j")
    assert settings.blob_store_url == "gs://heysh-blobs/prod"
    assert settings.neo4j_password is not None
    assert settings.neo4j_password.get_secret_value() == "neo4j-secret"
    assert "secret" not in repr(settings)


def test_the_defaults_are_the_embedded_backends(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)

    assert (settings.vector_backend, settings.graph_backend) == ("pgvector", "postgres")
    assert settings.blob_store_url == (tmp_path / "blobs").resolve().as_uri()
    with pytest.raises(ValidationError):
        Settings(state_dir=tmp_path, vector_backend="faiss")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chosen", "variable"),
    [
        ({"vector_backend": "weaviate"}, "HEYSH_WEAVIATE_URL"),
        ({"graph_backend": "neo4j"}, "HEYSH_NEO4J_URL"),
    ],
)
def test_a_backend_without_its_address_is_named(
    tmp_path: Path, chosen: dict[str, str], variable: str
) -> None:
    with pytest.raises(StoreConfigurationError, match=variable):
        check_configuration(Settings(state_dir=tmp_path, **chosen))


def test_addresses_in_messages_carry_no_password() -> None:
    assert (
        address_of("postgresql://app:hunter2@db.internal:5432/heysh")
        == "postgresql://db.internal:5432/heysh"
    )


# Reaching the services


def closed_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"


async def test_an_unreachable_weaviate_is_named(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, weaviate_url=closed_url("http"), backend_timeout_s=3
    )

    with pytest.raises(BackendUnreachableError, match="^Weaviate at http://"):
        await connect_weaviate(settings)


async def test_an_unreachable_neo4j_is_named(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, neo4j_url=closed_url("bolt"), backend_timeout_s=3
    )

    with pytest.raises(BackendUnreachableError, match="^Neo4j at bolt://"):
        await connect_neo4j(settings)


async def test_an_unreachable_postgres_is_named(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, database_url=f"{closed_url('postgresql')}/heysh"
    )

    with pytest.raises(BackendUnreachableError, match="^PostgreSQL at"):
        async with open_stores(settings):
            pass


@pytest.mark.stack
@pytest.mark.parametrize(
    ("chosen", "service"),
    [
        (
            {"vector_backend": "weaviate", "weaviate_url": closed_url("http")},
            "Weaviate",
        ),
        ({"graph_backend": "neo4j", "neo4j_url": closed_url("neo4j")}, "Neo4j"),
        ({"blob_url": "gs://heysh-blobs/prod"}, "GCS"),
    ],
    ids=["weaviate", "neo4j", "gcs"],
)
async def test_the_factory_names_the_store_it_cannot_reach(
    settings: Settings,
    postgres: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chosen: dict[str, str],
    service: str,
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_url("http"))
    configured = Settings(
        state_dir=tmp_path,
        database_url=settings.database_url,
        backend_timeout_s=3,
        **chosen,
    )

    with pytest.raises(BackendUnreachableError, match=f"^{service} at") as caught:
        async with open_stores(configured):
            pass
    assert caught.value.service == service


@pytest.mark.stack
def test_check_reports_each_service(
    settings: Settings, postgres: str, tmp_path: Path
) -> None:
    env = {
        "HEYSH_STATE_DIR": str(tmp_path),
        "HEYSH_DATABASE_URL": settings.database_url,
        "HEYSH_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "HEYSH_SERVE_URL": closed_url("http"),
        "HEYSH_VECTOR_BACKEND": "weaviate",
        "HEYSH_WEAVIATE_URL": closed_url("http"),
        "HEYSH_BACKEND_TIMEOUT_S": "3",
        "COLUMNS": "200",
    }

    result = CliRunner().invoke(app, ["check"], env=env)

    assert result.exit_code == 1, result.output
    states = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in result.output.splitlines()
        if line.count("│") == 4
    }
    assert states["PostgreSQL"] == "reachable"
    assert states["blobs"] == "reachable"
    for service in ("Temporal", "Ray Serve", "Weaviate"):
        assert states[service].startswith("unreachable"), states


@pytest.mark.stack
async def test_the_storage_worker_runs_on_the_configured_stores(
    settings: Settings, postgres: str, tmp_path: Path
) -> None:
    configured = Settings(state_dir=tmp_path, database_url=settings.database_url)
    env = ActivityEnvironment()
    text = f"Storage backends by configuration, run {uuid.uuid4()}.".encode()
    source = open_blob_store(configured.blob_store_url).put("documents/note", text)

    async with tier_activities(Queue.STORAGE, configured) as tier:
        run = {activity.__name__: activity for activity in tier.activities}
        registered = await env.run(
            run["register_document"], DocumentInput(source_uri=source, name="n.txt")
        )
        ref = registered.ref
        extracted = await env.run(
            run["extract_text"], ExtractionInput(ref=ref, media_type=MediaType.TEXT)
        )
        analysis = small_analysis(ref.document_id).model_copy(
            update={"dimensions": 384}
        )
        for chunk in analysis.chunks:
            chunk.embedding = [1.0] + [0.0] * 383
        analysis_uri = open_blob_store(configured.blob_store_url).put(
            analysis_key(ref.document_id, "v1"), analysis.model_dump_json().encode()
        )
        request = IndexInput(document_id=ref.document_id, analysis_uri=analysis_uri)
        indexed = await env.run(run["index_document_vectors"], request)
        graph = await env.run(run["update_document_graph"], request)
        result = await env.run(
            run["sync_database"],
            SyncInput(
                ref=ref,
                media_type=MediaType.TEXT,
                extracted=extracted,
                analysis=AnalysisResult(
                    analysis_uri=analysis_uri,
                    chunk_count=3,
                    key_phrases=[p.phrase for p in analysis.key_phrases],
                    embedding_model=analysis.model,
                ),
                summary=None,
                workflow_id="storage-wiring",
                duration_s=1.0,
            ),
        )

    assert (indexed.vectors, indexed.removed) == (3, 0)
    assert (graph.nodes, graph.edges) == (6, 9)
    assert result.status is DocumentStatus.COMPLETED and result.chunk_count == 3
