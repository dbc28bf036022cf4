"""Worker start-up: one process serves one task queue with that queue's limits.

`heysh worker ai|storage|general` runs `run_worker`; the local stack starts three of
them, and a deployment runs them next to its Temporal and Ray clusters.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from orchestration.blobs import open_blob_store
from orchestration.client import connect
from orchestration.config import Settings
from orchestration.queues import LIMITS, WORKFLOW_QUEUE, Queue
from orchestration.workflows import DocumentProcessingWorkflow

logger = logging.getLogger(__name__)

WORKFLOWS = [DocumentProcessingWorkflow]


@asynccontextmanager
async def tier_activities(
    queue: Queue, settings: Settings
) -> AsyncIterator[list[Callable[..., Any]]]:
    """The activities of one tier, with the connections they hold open.

    Each tier's package is imported only here, so an AI worker never loads the
    storage driver and a storage worker never loads the HTTP inference client.
    """
    if queue is Queue.AI:
        from ray_serve.activities import AIActivities
        from ray_serve.inference_client import InferenceClient

        client = InferenceClient(
            settings.serve_url,
            timeout_s=max(settings.embedding_timeout_s, settings.summary_timeout_s),
            concurrency=settings.inference_concurrency,
        )
        ai = AIActivities(
            client,
            open_blob_store(settings.blob_store_url),
            settings.summary_max_tokens,
            settings.summary_input_chars,
        )
        try:
            yield [ai.analyze_document, ai.generate_summary]
        finally:
            await client.aclose()
    elif queue is Queue.STORAGE:
        from storage_tier.activities import StorageActivities
        from storage_tier.backends import open_stores

        # The backends (pgvector or Weaviate, PostgreSQL or Neo4j, a directory or a
        # GCS bucket) come from settings alone; the activities see one interface each.
        async with open_stores(settings) as stores:
            storage = StorageActivities(
                stores.blobs, stores.documents, stores.vectors, stores.graph
            )
            yield [
                storage.register_document,
                storage.extract_text,
                storage.index_document_vectors,
                storage.update_document_graph,
                storage.sync_database,
                storage.record_document_failure,
                storage.record_undelivered_notification,
            ]
    else:
        from general_tier.activities import GeneralActivities
        from general_tier.notifications import CircuitBreaker, Notifier
        from general_tier.validation import Limits

        notifier = Notifier(
            settings.webhook_url,
            settings.webhook_timeout_s,
            CircuitBreaker(),
            frozenset(host.lower() for host in settings.webhook_allowed_hosts),
        )
        general = GeneralActivities(
            open_blob_store(settings.blob_store_url),
            Limits(max_bytes=settings.max_document_bytes),
            notifier,
        )
        try:
            yield [general.validate_document, general.notify_user]
        finally:
            await notifier.aclose()


def build_worker(
    client: Client,
    queue: Queue,
    activities: Sequence[Callable[..., Any]],
    task_queue: str | None = None,
) -> Worker:
    limits = LIMITS[queue]
    return Worker(
        client,
        task_queue=task_queue or queue.value,
        activities=activities,
        workflows=WORKFLOWS if queue is WORKFLOW_QUEUE else [],
        max_concurrent_activities=limits.max_concurrent_activities,
        max_concurrent_workflow_tasks=limits.max_concurrent_workflow_tasks,
        # After a worker dies, its cached workflows move to another worker after this
        # long instead of the default 10 s.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


async def run_worker(queue: Queue, settings: Settings) -> None:
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with tier_activities(queue, settings) as activities:
        worker = build_worker(client, queue, activities)
        async with worker:
            logger.info(
                "worker polling %s (%d activities, %d workflow tasks)",
                queue.value,
                LIMITS[queue].max_concurrent_activities,
                LIMITS[queue].max_concurrent_workflow_tasks,
            )
            await stop.wait()
            # Leaving the block shuts the worker down gracefully: no new tasks are
            # polled and running activities get graceful_shutdown_timeout to finish.
            logger.info("worker for %s shutting down", queue.value)
    logger.info("worker for %s stopped", queue.value)
