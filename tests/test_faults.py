"""Faults survived on the real stack: every document finishes exactly once.

Worker processes run here as separate processes (`heysh worker ...`) in a Temporal
namespace of their own, so they can be killed with SIGKILL in the middle of their work
and started again, as an operator or a crashing machine would.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestration.blobs import LocalBlobStore
from orchestration.config import Settings
from orchestration.models import DocumentStatus
from orchestration.submission import Submission, outcome_of, submit
from storage_tier.graph import document_node
from tests.conftest import FAULTS_NAMESPACE

pytestmark = [pytest.mark.stack, pytest.mark.slow]

TIERS = ("general", "storage", "ai")
WORDS = (
    "queue",
    "worker",
    "retry",
    "backoff",
    "ledger",
    "shard",
    "replica",
    "index",
    "vector",
    "batch",
    "lease",
    "heartbeat",
    "journal",
    "commit",
    "snapshot",
    "cursor",
    "window",
    "latency",
    "throughput",
    "budget",
)


class WorkerProcesses:
    """The three workers as real processes, killable and restartable one by one."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "HEYSH_TEMPORAL_ADDRESS": settings.temporal_address,
            "HEYSH_TEMPORAL_NAMESPACE": FAULTS_NAMESPACE,
            "HEYSH_DATABASE_URL": settings.database_url,
            "HEYSH_SERVE_URL": settings.serve_url,
            "HEYSH_BLOB_ROOT": str(settings.blob_directory),
            "HEYSH_STATE_DIR": str(settings.resolved_state_dir),
            "HEYSH_SUMMARY_MAX_TOKENS": str(settings.summary_max_tokens),
        }

    def start(self, tier: str) -> None:
        log = self.logs / f"{tier}-{time.monotonic_ns()}.log"
        with open(log, "wb") as out:
            self.processes[tier] = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "worker", tier],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "worker polling" not in log.read_text(errors="replace"):
            assert self.processes[tier].poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{tier} worker did not start"
            time.sleep(0.2)

    def kill(self, tier: str) -> None:
        process = self.processes.pop(tier)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


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


@pytest.fixture
async def fault_client(settings: Settings, temporal_env) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=FAULTS_NAMESPACE,
        data_converter=pydantic_data_converter,
    )


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
