"""A backlog of 1,000 documents drained through the real stack, counted exactly.

The three workers run as their own processes, as deployed; the documents are small,
so the run measures orchestration and batching rather than the model. Set
HEYSH_LOAD_DOCUMENTS to change the size of the backlog.
"""

import asyncio
import os
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from orchestration.blobs import LocalBlobStore
from orchestration.config import Settings
from orchestration.submission import submit
from storage_tier.graph import document_node
from tests.worker_processes import TIERS, WORDS, WorkerProcesses

pytestmark = [pytest.mark.stack, pytest.mark.slow]

BACKLOG = int(os.environ.get("HEYSH_LOAD_DOCUMENTS", "1000"))


def small_documents(folder: Path, count: int) -> list[Path]:
    paths = []
    for number in range(count):
        words = " ".join(WORDS[(number // (i + 1) + i) % len(WORDS)] for i in range(40))
        path = folder / f"backlog-{number:04d}.txt"
        path.write_text(f"Backlog note {number}: {words}.\n")
        paths.append(path)
    return paths


# About 10 minutes on 2 cores: past the suite's default per-test limit.
@pytest.mark.timeout(2400)
async def test_a_backlog_drains_with_exact_counts(
    fault_client: Client,
    settings: Settings,
    db,
    postgres: str,
    serve: str,
    tmp_path: Path,
) -> None:
    workers = WorkerProcesses(settings, tmp_path)
    blobs = LocalBlobStore(settings.blob_directory)
    paths = small_documents(tmp_path, BACKLOG)
    gate = asyncio.Semaphore(32)

    async def start(path: Path):
        async with gate:
            return await submit(fault_client, blobs, path, summarize=False)

    # The backlog is queued before any worker runs, as after an outage.
    submissions = await asyncio.gather(*(start(path) for path in paths))
    ids = [submission.document_id for submission in submissions]
    started = time.monotonic()
    try:
        for tier in TIERS:
            workers.start(tier)
        while (await fault_client.count_workflows("ExecutionStatus = 'Running'")).count:
            assert time.monotonic() - started < 1800, "workflows still running"
            await asyncio.sleep(5)
    finally:
        workers.stop_all()

    assert (
        await fault_client.count_workflows("ExecutionStatus != 'Completed'")
    ).count == 0
    rows = await db.fetch(
        "SELECT id, status, chunk_count FROM documents WHERE id = ANY($1::text[])", ids
    )
    assert len(rows) == BACKLOG
    assert {row["status"] for row in rows} == {"completed"}
    expected_chunks = sum(row["chunk_count"] for row in rows)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM chunks WHERE document_id = ANY($1::text[])", ids
        )
        == expected_chunks
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM graph_edges WHERE kind = 'HAS_CHUNK'"
            " AND source_id = ANY($1::text[])",
            [document_node(document_id) for document_id in ids],
        )
        == expected_chunks
    )
    print(f"\n{BACKLOG} documents drained in {time.monotonic() - started:.0f} s")
