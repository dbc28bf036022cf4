"""End to end on the real stack: Temporal, PostgreSQL with pgvector, Ray Serve, the
three workers. Checks what lands in the stores, not just what the workflow returns."""

import os
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from orchestration.blobs import LocalBlobStore, document_key
from orchestration.config import Settings
from orchestration.errors import DocumentError
from orchestration.models import DocumentInput, DocumentStatus, content_hash
from orchestration.queues import Queue
from orchestration.submission import Outcome, outcome_of, submit
from orchestration.workflows import DocumentProcessingWorkflow
from ray_serve.inference_client import InferenceClient
from storage_tier.graph import document_node
from storage_tier.vectors import PgVectorStore
from tests.conftest import BAD_INPUT, REPO, SAMPLES

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("workers")]

HISTORY = REPO / "tests" / "histories" / "document_processing.json"


async def process(
    client: Client, settings: Settings, paths: list[Path]
) -> list[Outcome]:
    blobs = LocalBlobStore(settings.blob_directory)
    submissions = [await submit(client, blobs, path) for path in paths]
    return [await outcome_of(submission) for submission in submissions]


async def store_counts(db, document_id: str) -> dict[str, int]:
    return {
        "documents": await db.fetchval(
            "SELECT count(*) FROM documents WHERE id = $1", document_id
        ),
        "chunks": await db.fetchval(
            "SELECT count(*) FROM chunks WHERE document_id = $1", document_id
        ),
        "chunk_nodes": await db.fetchval(
            "SELECT count(*) FROM graph_nodes WHERE id LIKE $1",
            f"chunk:{document_id}:%",
        ),
        "edges": await db.fetchval(
            "SELECT count(*) FROM graph_edges"
            " WHERE source_id = $1 OR source_id LIKE $2",
            document_node(document_id),
            f"chunk:{document_id}:%",
        ),
        "all_rows": await db.fetchval("SELECT count(*) FROM documents"),
        "all_chunks": await db.fetchval("SELECT count(*) FROM chunks"),
        "all_edges": await db.fetchval("SELECT count(*) FROM graph_edges"),
    }


async def test_samples_end_to_end(client: Client, settings: Settings, db) -> None:
    samples = sorted(SAMPLES.iterdir())
    outcomes = await process(client, settings, samples)

    for outcome in outcomes:
        assert outcome.result is not None, (outcome.error_type, outcome.error_message)
        result = outcome.result
        row = await db.fetchrow(
            "SELECT * FROM documents WHERE id = $1", result.document_id
        )
        assert row["status"] == DocumentStatus.COMPLETED
        assert row["body"] and row["chars"] == result.chars
        assert row["summary"] and result.summary == row["summary"]
        assert row["summary_model"] == "SmolLM2-135M-Instruct"
        assert row["embedding_model"] == "all-MiniLM-L6-v2"
        assert row["embedding_model_version"] == result.embedding_model.version
        assert len(row["key_phrases"]) >= 3
        counts = await store_counts(db, result.document_id)
        assert counts["chunks"] == result.chunk_count > 0
        assert counts["chunk_nodes"] == result.chunk_count
        kinds = dict(
            await db.fetch(
                "SELECT kind, count(*) FROM graph_edges"
                " WHERE source_id = $1 GROUP BY kind",
                document_node(result.document_id),
            )
        )
        assert kinds["HAS_CHUNK"] == result.chunk_count
        assert kinds["ABOUT"] == len(row["key_phrases"])

    pdf = next(o.result for o in outcomes if o.submission.name.endswith(".pdf"))
    assert pdf is not None and pdf.pages == 3

    inference = InferenceClient(settings.serve_url)
    try:
        query = await inference.embed(
            ["how does dynamic batching raise GPU throughput"]
        )
    finally:
        await inference.aclose()
    hits = await PgVectorStore(db).search(query.vectors[0], query.model.version, 3)
    assert hits[0].document_name == "gpu-inference-batching.html"
    assert hits[0].score > 0.3

    if os.environ.get("HEYSH_RECORD_HISTORY"):
        text_doc = next(o for o in outcomes if o.submission.name.endswith(".txt"))
        history = await text_doc.submission.handle.fetch_history()
        HISTORY.write_text(history.to_json())


async def test_processing_again_writes_nothing_twice(
    client: Client, settings: Settings, db
) -> None:
    path = SAMPLES / "incident-report.md"
    [first] = await process(client, settings, [path])
    assert first.result is not None
    before = await store_counts(db, first.result.document_id)
    row_before = await db.fetchrow(
        "SELECT chunk_count, summary, key_phrases FROM documents WHERE id = $1",
        first.result.document_id,
    )

    # Submitting the same file attaches to the finished workflow...
    [again] = await process(client, settings, [path])
    assert again.submission.attached
    assert again.result == first.result

    # ...and running every activity once more, under a new workflow, changes nothing.
    blob_uri = LocalBlobStore(settings.blob_directory).uri_for(
        document_key(content_hash(path.read_bytes()))
    )
    rerun = await client.execute_workflow(
        DocumentProcessingWorkflow.run,
        DocumentInput(source_uri=blob_uri, name=path.name),
        id=f"rerun-{uuid.uuid4()}",
        task_queue=Queue.GENERAL.value,
    )
    assert rerun.document_id == first.result.document_id
    assert await store_counts(db, first.result.document_id) == before
    row_after = await db.fetchrow(
        "SELECT chunk_count, summary, key_phrases FROM documents WHERE id = $1",
        first.result.document_id,
    )
    assert row_after == row_before


BAD_INPUT_ERRORS = {
    "empty.txt": DocumentError.EMPTY_DOCUMENT,
    "whitespace-only.txt": DocumentError.EMPTY_DOCUMENT,
    "binary-named.txt": DocumentError.UNSUPPORTED_TYPE,
    "truncated.pdf": DocumentError.CORRUPT_PDF,
    "encrypted.pdf": DocumentError.ENCRYPTED_PDF,
    "no-text-layer.pdf": DocumentError.NO_TEXT_CONTENT,
    "only-scripts.html": DocumentError.NO_TEXT_CONTENT,
    "undecodable.txt": DocumentError.UNDECODABLE_TEXT,
    "mixed-encodings.txt": DocumentError.UNDECODABLE_TEXT,
    "huge-single-line.txt": DocumentError.LINE_TOO_LONG,
    "archive.zip": DocumentError.UNSUPPORTED_TYPE,
    "unsupported.rtf": DocumentError.UNSUPPORTED_TYPE,
}


async def test_bad_input_fails_alone_with_named_errors(
    client: Client, settings: Settings, db, tmp_path: Path
) -> None:
    oversize = tmp_path / "oversize.txt"
    oversize.write_text("all work and no play " * 60_000)
    duplicate = tmp_path / "copy-of-field-notes.txt"
    shutil.copy(SAMPLES / "field-notes-coffee.txt", duplicate)
    good = tmp_path / "good-note.txt"
    good.write_text(
        "Backpressure keeps a queue honest: when consumers slow down, producers "
        "feel it, and the backlog becomes visible instead of silent timeouts. " * 5
    )
    expected = {BAD_INPUT / name: error for name, error in BAD_INPUT_ERRORS.items()}
    expected[oversize] = DocumentError.DOCUMENT_TOO_LARGE
    expected[duplicate] = DocumentError.DUPLICATE_DOCUMENT
    # The original must exist before its copy can be a duplicate of it.
    await process(client, settings, [SAMPLES / "field-notes-coffee.txt"])

    outcomes = await process(client, settings, [*expected, good])
    # The same archive bytes under a text name, once the first copy has failed and
    # released its content: refused for what it is, not as a duplicate.
    outcomes += await process(client, settings, [BAD_INPUT / "archive-named.md"])
    expected[BAD_INPUT / "archive-named.md"] = DocumentError.UNSUPPORTED_TYPE

    by_path = {outcome.submission.path: outcome for outcome in outcomes}
    assert by_path[good].result is not None
    assert by_path[good].result.status is DocumentStatus.COMPLETED
    for path, error in expected.items():
        outcome = by_path[path]
        assert outcome.result is None, path
        assert outcome.error_type == error, (path, outcome.error_message)
        row = await db.fetchrow(
            "SELECT status, error_type, error_message FROM documents WHERE id = $1",
            outcome.submission.document_id,
        )
        assert row["status"] == DocumentStatus.FAILED
        assert row["error_type"] == error
        assert row["error_message"] == outcome.error_message
        for table in ("chunks", "graph_edges"):
            column = "document_id" if table == "chunks" else "source_id"
            key = (
                outcome.submission.document_id
                if table == "chunks"
                else document_node(outcome.submission.document_id)
            )
            written = await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} = $1", key
            )
            assert written == 0, (path, table)


async def test_a_path_in_the_document_name_is_refused(
    client: Client, settings: Settings, db
) -> None:
    blob_uri = LocalBlobStore(settings.blob_directory).put(
        "documents/traversal-test", b"harmless text that names itself badly"
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await client.execute_workflow(
            DocumentProcessingWorkflow.run,
            DocumentInput(source_uri=blob_uri, name="../../etc/passwd"),
            id=f"traversal-{uuid.uuid4()}",
            task_queue=Queue.GENERAL.value,
        )
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == DocumentError.INVALID_INPUT
    assert (
        await db.fetchval("SELECT count(*) FROM documents WHERE name LIKE '%passwd%'")
        == 0
    )
