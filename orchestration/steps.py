"""Activity names, the queue each runs on, and its timeouts and retry policy.

Workflows call activities by these names, so a tier can be redeployed (or stood in for
by a test) without the workflow importing its code.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

from orchestration.errors import NON_RETRYABLE_ERROR_TYPES
from orchestration.queues import Queue

# Long activities heartbeat every few seconds, so a worker that dies mid-activity is
# noticed and its work handed to another attempt within this long.
HEARTBEAT_TIMEOUT = timedelta(seconds=15)


@dataclass(frozen=True)
class Step:
    name: str
    queue: Queue
    start_to_close: timedelta
    schedule_to_close: timedelta
    heartbeat: timedelta | None = None
    max_attempts: int = 0  # 0: until schedule_to_close

    @property
    def retry_policy(self) -> RetryPolicy:
        # Temporal owns retries: activities never retry by themselves, bad input is
        # marked non-retryable, everything else backs off until schedule_to_close.
        return RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=self.max_attempts,
            non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
        )


ResultT = TypeVar("ResultT")


async def execute(step: Step, arg: Any, result_type: type[ResultT] | None) -> ResultT:
    """Run the step's activity from a workflow, with the step's queue and limits."""
    return await workflow.execute_activity(
        step.name,
        arg,
        task_queue=step.queue,
        start_to_close_timeout=step.start_to_close,
        schedule_to_close_timeout=step.schedule_to_close,
        heartbeat_timeout=step.heartbeat,
        retry_policy=step.retry_policy,
        result_type=result_type,
    )


REGISTER_DOCUMENT = Step(
    "register_document", Queue.STORAGE, timedelta(seconds=30), timedelta(minutes=10)
)
VALIDATE_DOCUMENT = Step(
    "validate_document", Queue.GENERAL, timedelta(seconds=60), timedelta(minutes=10)
)
EXTRACT_TEXT = Step(
    "extract_text",
    Queue.STORAGE,
    timedelta(minutes=5),
    timedelta(minutes=20),
    heartbeat=HEARTBEAT_TIMEOUT,
)
ANALYZE_DOCUMENT = Step(
    "analyze_document",
    Queue.AI,
    timedelta(minutes=10),
    timedelta(minutes=60),
    heartbeat=HEARTBEAT_TIMEOUT,
)
GENERATE_SUMMARY = Step(
    "generate_summary",
    Queue.AI,
    timedelta(minutes=10),
    timedelta(minutes=60),
    heartbeat=HEARTBEAT_TIMEOUT,
)
INDEX_DOCUMENT_VECTORS = Step(
    "index_document_vectors",
    Queue.STORAGE,
    timedelta(minutes=5),
    timedelta(minutes=20),
    heartbeat=HEARTBEAT_TIMEOUT,
)
UPDATE_DOCUMENT_GRAPH = Step(
    "update_document_graph", Queue.STORAGE, timedelta(minutes=5), timedelta(minutes=20)
)
SYNC_DATABASE = Step(
    "sync_database", Queue.STORAGE, timedelta(seconds=60), timedelta(minutes=20)
)
RECORD_FAILURE = Step(
    "record_document_failure",
    Queue.STORAGE,
    timedelta(seconds=30),
    timedelta(minutes=20),
)
RECORD_UNDELIVERED_NOTIFICATION = Step(
    "record_undelivered_notification",
    Queue.STORAGE,
    timedelta(seconds=30),
    timedelta(minutes=20),
)
# A notification that cannot be delivered must not hold up or fail its document: a few
# attempts, then the workflow records that it was not delivered.
NOTIFY_USER = Step(
    "notify_user",
    Queue.GENERAL,
    timedelta(seconds=30),
    timedelta(minutes=5),
    max_attempts=5,
)

# Reindexing: the model's current version, the documents embedded by another, and the
# row and vectors switched over once a document is embedded again.
DESCRIBE_MODEL = Step(
    "describe_model", Queue.AI, timedelta(seconds=30), timedelta(minutes=10)
)
FIND_STALE_DOCUMENTS = Step(
    "find_stale_documents", Queue.STORAGE, timedelta(seconds=60), timedelta(minutes=10)
)
RECORD_REINDEXED = Step(
    "record_reindexed", Queue.STORAGE, timedelta(seconds=60), timedelta(minutes=20)
)
