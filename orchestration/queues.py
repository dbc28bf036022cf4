"""The three task queues and the concurrency limits each worker runs with."""

from dataclasses import dataclass
from enum import StrEnum


class Queue(StrEnum):
    """Task queues, named by what their activities consume."""

    AI = "ai-processing-queue"
    STORAGE = "storage-queue"
    GENERAL = "general-queue"


@dataclass(frozen=True)
class QueueLimits:
    max_concurrent_activities: int
    max_concurrent_workflow_tasks: int


# Per-worker limits from the queue design: AI work is few and heavy, general work is
# many and light.
LIMITS: dict[Queue, QueueLimits] = {
    Queue.AI: QueueLimits(
        max_concurrent_activities=5, max_concurrent_workflow_tasks=10
    ),
    Queue.STORAGE: QueueLimits(
        max_concurrent_activities=20, max_concurrent_workflow_tasks=20
    ),
    Queue.GENERAL: QueueLimits(
        max_concurrent_activities=50, max_concurrent_workflow_tasks=50
    ),
}

# Workflows are coordination, so they run on the general queue.
WORKFLOW_QUEUE = Queue.GENERAL
