"""Faults survived on the real stack: every document finishes exactly once.

Worker processes run here as separate processes (`heysh worker ...`) in a Temporal
namespace of their own, so they can be killed with SIGKILL in the middle of their work
and started again, as an operator or a crashing machine would.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestration.blobs import LocalBlobStore
from orchestration.config import Settings
from orchestration.models import DocumentStatus
from orchestration.stack import Stack
from orchestration.submission import Submission, outcome_of, submit
from storage_tier.graph import document_node
from tests.conftest import free_port
from tests.worker_processes import TIERS, WORDS, WorkerProcesses

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def worker_processes(
    settings: Settings, postgres: str, serve: str, tmp_path: Path
) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(settings, tmp_path)
    try:
        for tier in TIERS:
            workers.start(tier)
        yield workers
    finally:
        workers.stop_all()


def corpus(folder: Path, tag: str, count: int, words: int = 600) -> list[Path]:
    """Distinct, deterministic text documents."""
    paths = []
    for number in range(count):
        text = " ".join(
            WORDS[(number * 7 + i * (number + 3)) % len(WORDS)] for i in range(words)
        )
        path = folder / f"{tag}-{number}.txt"
        path.write_text(f"{tag} document {number}. {text}.\n")
        paths.append(path)
    return paths


async def running_activity(
    submissions: list[Submission], activity_types: set[str], timeout_s: float
) -> str | None:
    """Wait until one of the activity types is executing on a worker right now."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for submission in submissions:
            description = await submission.handle.describe()
            for pending in description.raw_description.pending_activities:
                if (
                    pending.activity_type.name in activity_types
                    and pending.state
                    == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                ):
                    return pending.activity_type.name
        await asyncio.sleep(0.05)
    return None


async def assert_exactly_once(db, outcomes) -> None:
    ids = [outcome.result.document_id for outcome in outcomes]
    assert await db.fetchval(
        "SELECT count(*) FROM documents WHERE id = ANY($1::text[])", ids
    ) == len(ids)
    for outcome in outcomes:
        result = outcome.result
        row = await db.fetchrow(
            "SELECT * FROM documents WHERE id = $1", result.document_id
        )
        assert row["status"] == DocumentStatus.COMPLETED
        assert row["chunk_count"] == result.chunk_count
        assert (
            await db.fetchval(
                "SELECT count(*) FROM chunks WHERE document_id = $1", result.document_id
            )
            == result.chunk_count
        )
        edges = dict(
            await db.fetch(
                "SELECT kind, count(*) FROM graph_edges WHERE source_id = $1"
                " GROUP BY kind",
                document_node(result.document_id),
            )
        )
        assert edges == {
            "HAS_CHUNK": result.chunk_count,
            "ABOUT": len(result.key_phrases),
        }


KILL_TARGETS = {
    "ai": {"analyze_document", "generate_summary"},
    "storage": {"extract_text", "index_document_vectors", "update_document_graph"},
    "general": {"validate_document", "notify_user"},
}


@pytest.mark.parametrize("tier", ["ai", "storage", "general"])
async def test_worker_killed_mid_activity_loses_and_doubles_nothing(
    tier: str,
    fault_client: Client,
    settings: Settings,
    db,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    blobs = LocalBlobStore(settings.blob_directory)
    paths = corpus(tmp_path, f"kill-{tier}", 6)
    submissions = [
        await submit(fault_client, blobs, path, summarize=tier == "ai")
        for path in paths
    ]

    caught = await running_activity(submissions, KILL_TARGETS[tier], timeout_s=60)
    worker_processes.kill(tier)
    await asyncio.sleep(1)
    worker_processes.start(tier)

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(outcome_of(s) for s in submissions)), timeout=300
    )
    for outcome in outcomes:
        assert outcome.result is not None, (outcome.error_type, outcome.error_message)
    await assert_exactly_once(db, outcomes)
    # The AI activities last long enough to be caught every time; the others take
    # milliseconds, and a kill between them still exercises workflow-task recovery.
    if tier == "ai":
        assert caught is not None


async def submit_corpus(
    client: Client, settings: Settings, paths: list[Path], summarize: bool = False
) -> list[Submission]:
    blobs = LocalBlobStore(settings.blob_directory)
    return [await submit(client, blobs, path, summarize=summarize) for path in paths]


async def finish_all(submissions: list[Submission], timeout_s: float = 300) -> list:
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(outcome_of(s) for s in submissions)), timeout=timeout_s
    )
    for outcome in outcomes:
        assert outcome.result is not None, (outcome.error_type, outcome.error_message)
    return outcomes


async def test_postgres_restarted_mid_run(
    fault_client: Client,
    settings: Settings,
    stack: Stack,
    db,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    submissions = await submit_corpus(
        fault_client, settings, corpus(tmp_path, "pg-restart", 6)
    )
    assert await running_activity(submissions, KILL_TARGETS["ai"], timeout_s=60)

    assert stack.stop_postgres()
    await asyncio.sleep(3)
    stack.start_postgres()

    outcomes = await finish_all(submissions)
    await db.expire_connections()
    await assert_exactly_once(db, outcomes)


def serve_replicas(deployment: str) -> list[psutil.Process]:
    replicas = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "ServeReplica" in cmdline and deployment in cmdline:
            replicas.append(process)
    return replicas


async def test_serve_replica_killed_with_requests_in_flight(
    fault_client: Client,
    settings: Settings,
    db,
    worker_processes: WorkerProcesses,
    tmp_path: Path,
) -> None:
    [replica] = serve_replicas("Embedder")
    submissions = await submit_corpus(
        fault_client, settings, corpus(tmp_path, "replica-kill", 6, words=1500)
    )
    assert await running_activity(submissions, {"analyze_document"}, timeout_s=60)

    replica.kill()
    replica.wait(timeout=10)

    outcomes = await finish_all(submissions, timeout_s=400)
    await assert_exactly_once(db, outcomes)
    # Serve's controller replaced the replica.
    assert [p.pid for p in serve_replicas("Embedder")] != [replica.pid]


async def test_temporal_restarted_with_its_database_mid_run(
    settings: Settings, db, postgres: str, serve: str, tmp_path: Path
) -> None:
    """A Temporal dev server of its own, on a file database, stopped and started again
    while documents are in flight: the workflows resume where they were."""
    temporal_settings = Settings(
        state_dir=tmp_path / "temporal-state",
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_port=free_port(),
    )
    temporal = Stack(temporal_settings)
    temporal.start_temporal()
    workers = WorkerProcesses(
        settings, tmp_path, temporal_settings.temporal_address, namespace="default"
    )
    try:
        for tier in TIERS:
            workers.start(tier)
        client = await Client.connect(
            temporal_settings.temporal_address, data_converter=pydantic_data_converter
        )
        submissions = await submit_corpus(
            client, settings, corpus(tmp_path, "temporal-restart", 6)
        )
        assert await running_activity(submissions, KILL_TARGETS["ai"], timeout_s=60)

        temporal.stop_temporal()
        await asyncio.sleep(2)
        temporal.start_temporal()

        outcomes = await finish_all(submissions, timeout_s=400)
        await assert_exactly_once(db, outcomes)
    finally:
        workers.stop_all()
        temporal.down()


class WebhookReceiver:
    """A real HTTP endpoint on loopback that answers, fails or hangs on request."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.received: list[str] = []
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        self.received.append((await reader.readexactly(length)).decode())
        if self.mode == "hang":
            await asyncio.sleep(30)
        status = b"200 OK" if self.mode == "ok" else b"500 Internal Server Error"
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_a_failing_webhook_opens_the_breaker_and_loses_no_notification(
    mode: str,
    fault_client: Client,
    settings: Settings,
    db,
    postgres: str,
    serve: str,
    tmp_path: Path,
) -> None:
    receiver = WebhookReceiver()
    receiver.mode = mode
    await receiver.start()
    workers = WorkerProcesses(settings, tmp_path)
    workers.env.update(HEYSH_WEBHOOK_URL=receiver.url, HEYSH_WEBHOOK_TIMEOUT_S="1")
    try:
        for tier in TIERS:
            workers.start(tier)
        submissions = await submit_corpus(
            fault_client, settings, corpus(tmp_path, f"webhook-{mode}", 8, words=80)
        )
        outcomes = await finish_all(submissions)
    finally:
        workers.stop_all()
        await receiver.stop()

    # Every document completed although none of its notifications got through...
    await assert_exactly_once(db, outcomes)
    ids = [outcome.result.document_id for outcome in outcomes]
    rows = await db.fetch(
        "SELECT document_id, delivered, error FROM notifications"
        " WHERE document_id = ANY($1::text[])",
        ids,
    )
    # ...and each undelivered notification is recorded with its reason.
    assert sorted(row["document_id"] for row in rows) == sorted(ids)
    assert all(not row["delivered"] and row["error"] for row in rows)
    # The breaker opened: far fewer calls reached the endpoint than attempts were made
    # (8 documents x 5 attempts each).
    assert 5 <= len(receiver.received) < 8 * 5
    assert any("circuit open" in (row["error"] or "") for row in rows)


async def test_a_working_webhook_gets_each_notification(
    fault_client: Client,
    settings: Settings,
    db,
    postgres: str,
    serve: str,
    tmp_path: Path,
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    workers = WorkerProcesses(settings, tmp_path)
    workers.env.update(HEYSH_WEBHOOK_URL=receiver.url)
    try:
        for tier in TIERS:
            workers.start(tier)
        submissions = await submit_corpus(
            fault_client, settings, corpus(tmp_path, "webhook-ok", 3, words=80)
        )
        outcomes = await finish_all(submissions)
    finally:
        workers.stop_all()
        await receiver.stop()

    ids = {outcome.result.document_id for outcome in outcomes}
    delivered = {json.loads(body)["document_id"] for body in receiver.received}
    assert delivered == ids
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notifications WHERE document_id = ANY($1::text[])",
            list(ids),
        )
        == 0
    )
