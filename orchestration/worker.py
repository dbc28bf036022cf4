"""Worker start-up: one process serves one task queue with that queue's limits.

`heysh worker ai|storage|general` runs `run_worker`; the local stack starts three of
them, and a deployment runs them next to its Temporal and Ray clusters.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import FixedSizeSlotSupplier, Worker, WorkerTuner

from orchestration.blobs import open_blob_store
from orchestration.client import connect
from orchestration.config import Settings
from orchestration.queues import LIMITS, WORKFLOW_QUEUE, Queue
from orchestration.reindex_workflow import ReindexWorkflow
from orchestration.telemetry import (
    AI_SLOT_LIMIT,
    SERVE_CAPACITY,
    metrics_runtime,
)
from orchestration.workflows import DocumentProcessingWorkflow

if TYPE_CHECKING:
    from ray_serve.backpressure import AdjustableLimit, Shares

logger = logging.getLogger(__name__)

WORKFLOWS = [DocumentProcessingWorkflow, ReindexWorkflow]


@dataclass
class Tier:
    """A tier's activities, and for the AI tier the slot limit that follows Serve."""

    activities: list[Callable[..., Any]]
    activity_slots: "AdjustableLimit | None" = None


@asynccontextmanager
async def tier_activities(
    queue: Queue, settings: Settings, client: Client | None = None
) -> AsyncIterator[Tier]:
    """The activities of one tier, with the connections they hold open.

    Each tier's package is imported only here, so an AI worker never loads the
    storage driver and a storage worker never loads the HTTP inference client. Given
    a Temporal client, the AI tier also keeps its limits in step with Serve's
    capacity (see ray_serve/backpressure.py).
    """
    if queue is Queue.AI:
        from ray_serve.activities import AIActivities
        from ray_serve.backpressure import AdjustableLimit, ServeBackpressure
        from ray_serve.inference_client import InferenceClient

        inference = InferenceClient(
            settings.serve_url,
            timeout_s=max(settings.embedding_timeout_s, settings.summary_timeout_s),
            concurrency=settings.inference_concurrency,
        )
        ai = AIActivities(
            inference,
            open_blob_store(settings.blob_store_url),
            settings.summary_max_tokens,
            settings.summary_input_chars,
        )
        tier = Tier([ai.analyze_document, ai.generate_summary, ai.describe_model])
        async with AsyncExitStack() as cleanup:
            cleanup.push_async_callback(inference.aclose)
            if client is not None and settings.serve_backpressure:
                tier.activity_slots = AdjustableLimit(
                    LIMITS[queue].max_concurrent_activities
                )
                backpressure = ServeBackpressure(
                    settings.dashboard_url,
                    settings.ray_token,
                    client,
                    queue.value,
                    LIMITS[queue].max_concurrent_activities,
                    inference.limits,
                    tier.activity_slots,
                    on_change=record_shares,
                    interval_s=settings.serve_capacity_interval_s,
                )
                cleanup.push_async_callback(backpressure.aclose)
                # Limits are right before the first poll, then followed.
                await backpressure.refresh()
                follow = asyncio.create_task(backpressure.run())
                cleanup.callback(follow.cancel)
            yield tier
    elif queue is Queue.STORAGE:
        from storage_tier.activities import StorageActivities
        from storage_tier.backends import open_stores

        # The backends (pgvector or Weaviate, PostgreSQL or Neo4j, a directory or a
        # GCS bucket) come from settings alone; the activities see one interface each.
        async with open_stores(settings) as stores:
            storage = StorageActivities(
                stores.blobs, stores.documents, stores.vectors, stores.graph
            )
            yield Tier(
                [
                    storage.register_document,
                    storage.extract_text,
                    storage.index_document_vectors,
                    storage.update_document_graph,
                    storage.sync_database,
                    storage.record_document_failure,
                    storage.record_undelivered_notification,
                    storage.find_stale_documents,
                    storage.record_reindexed,
                ]
            )
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
            yield Tier([general.validate_document, general.notify_user])
        finally:
            await notifier.aclose()


def build_worker(
    client: Client,
    queue: Queue,
    activities: Sequence[Callable[..., Any]],
    task_queue: str | None = None,
    activity_slots: "AdjustableLimit | None" = None,
) -> Worker:
    limits = LIMITS[queue]
    slots: dict[str, Any] = {
        "max_concurrent_activities": limits.max_concurrent_activities,
        "max_concurrent_workflow_tasks": limits.max_concurrent_workflow_tasks,
    }
    if activity_slots is not None:
        # The AI tier's activity slots follow Serve's capacity instead of a constant.
        from ray_serve.backpressure import LimitSlotSupplier

        fixed = FixedSizeSlotSupplier(limits.max_concurrent_workflow_tasks)
        slots = {
            "tuner": WorkerTuner.create_composite(
                workflow_supplier=fixed,
                activity_supplier=LimitSlotSupplier(activity_slots),
                local_activity_supplier=FixedSizeSlotSupplier(1),
                nexus_supplier=FixedSizeSlotSupplier(1),
            )
        }
    return Worker(
        client,
        task_queue=task_queue or queue.value,
        activities=activities,
        workflows=WORKFLOWS if queue is WORKFLOW_QUEUE else [],
        # After a worker dies, its cached workflows move to another worker after this
        # long instead of the default 10 s.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        graceful_shutdown_timeout=timedelta(seconds=20),
        **slots,
    )


def record_shares(shares: "Shares") -> None:
    """Serve's capacity and this worker's slot limit, as worker metrics."""
    from ray_serve.backpressure import APPLICATION_OF

    meter = Runtime.default().metric_meter
    meter.create_gauge(AI_SLOT_LIMIT, "AI activity slots from Serve's capacity").set(
        shares.activity_slots
    )
    capacity = meter.create_gauge(SERVE_CAPACITY, "Requests Serve takes at once")
    for kind, total in shares.capacity.items():
        capacity.set(total, {"application": APPLICATION_OF.get(kind, kind)})


async def run_worker(queue: Queue, settings: Settings) -> None:
    runtime = metrics_runtime(settings)
    if runtime is not None:
        # The pipeline's own counters and gauges go through the same endpoint.
        Runtime.set_default(runtime, error_if_already_set=False)
    client = await connect(
        settings, runtime=runtime, service=f"heysh-worker-{queue.name.lower()}"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with tier_activities(queue, settings, client) as tier:
        worker = build_worker(client, queue, tier.activities, None, tier.activity_slots)
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
