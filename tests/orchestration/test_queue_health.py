"""What `heysh queues` shows, read from the real Temporal server and Ray Serve."""

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestration.config import Settings
from orchestration.models import DocumentInput
from orchestration.queue_health import (
    QueueHealth,
    describe_queues,
    serve_deployments,
)
from orchestration.queues import WORKFLOW_QUEUE, Queue
from orchestration.stack import Stack
from orchestration.worker import build_worker, tier_activities
from orchestration.workflows import DocumentProcessingWorkflow
from tests.conftest import QUEUES_NAMESPACE

pytestmark = pytest.mark.stack


def row(rows: list[QueueHealth], queue: Queue, tasks: str) -> QueueHealth:
    return next(r for r in rows if r.queue == queue.value and r.tasks == tasks)


async def until(
    client: Client, check: Callable[[list[QueueHealth]], bool], timeout_s: float = 60
) -> list[QueueHealth]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await describe_queues(client)
        if check(rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(1)


async def test_backlog_without_pollers_is_flagged_then_drains(
    settings: Settings, temporal_env
) -> None:
    client = await Client.connect(
        settings.temporal_address,
        namespace=QUEUES_NAMESPACE,
        data_converter=pydantic_data_converter,
    )
    handles = [
        await client.start_workflow(
            DocumentProcessingWorkflow.run,
            DocumentInput(source_uri=f"file:///nowhere/{number}.txt"),
            id=f"queued-{uuid.uuid4()}",
            task_queue=WORKFLOW_QUEUE.value,
        )
        for number in range(3)
    ]
    try:
        # Nobody polls the namespace yet: the workflow tasks wait, and say so.
        rows = await until(
            client, lambda rows: row(rows, Queue.GENERAL, "workflow").backlog >= 3
        )
        general = row(rows, Queue.GENERAL, "workflow")
        assert general.pollers == 0
        assert general.symptom and "no worker polling" in general.symptom

        # A general worker takes the workflow tasks; their first activities now wait
        # on the storage queue, where nobody polls.
        async with (
            tier_activities(Queue.GENERAL, settings) as tier,
            build_worker(client, Queue.GENERAL, tier.activities),
        ):
            rows = await until(
                client,
                lambda rows: (
                    row(rows, Queue.GENERAL, "workflow").backlog == 0
                    and row(rows, Queue.GENERAL, "workflow").pollers > 0
                    and row(rows, Queue.STORAGE, "activity").backlog >= 3
                ),
            )
        storage = row(rows, Queue.STORAGE, "activity")
        assert storage.pollers == 0
        assert storage.symptom
        assert storage.add_rate >= 0 and storage.backlog_age_s >= 0
    finally:
        for handle in handles:
            await handle.terminate("queue health test done")


async def test_serve_deployments_show_replicas_and_capacity(
    stack: Stack, serve: str
) -> None:
    deployments = {
        d.deployment: d for d in serve_deployments(stack.serve_applications())
    }
    embedder = deployments["Embedder"]
    assert embedder.status == "HEALTHY"
    assert (embedder.replicas, embedder.target_replicas) == (1, 1)
    assert embedder.capacity == 64
    assert {"ModelIndex", "Embedder", "Summarizer"} <= set(deployments)
