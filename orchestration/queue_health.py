"""Queue health for operators: backlog, rates and pollers of the three task queues.

Read with DescribeTaskQueue and its statistics, straight from the Temporal server: the
server's Prometheus backlog gauge lags by tens of seconds and is split by partition.
"""

from dataclasses import dataclass, replace

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from orchestration.queues import WORKFLOW_QUEUE, Queue


@dataclass(frozen=True)
class QueueHealth:
    queue: str
    tasks: str  # "workflow" or "activity"
    backlog: int
    backlog_age_s: float
    add_rate: float
    dispatch_rate: float
    pollers: int

    @property
    def symptom(self) -> str | None:
        """What an operator should act on, in the queue design's own terms."""
        if self.backlog and not self.pollers:
            return "backlog with no worker polling: start or scale this queue's workers"
        if self.backlog and self.add_rate > self.dispatch_rate * 1.5 + 0.1:
            return "backlog growing faster than it drains: scale out"
        return None


@dataclass(frozen=True)
class DeploymentHealth:
    application: str
    deployment: str
    status: str
    replicas: int
    target_replicas: int
    max_ongoing_requests: int | None
    ongoing_requests: int | None = None

    @property
    def capacity(self) -> int | None:
        """Requests the deployment takes at once: replicas times their limit."""
        if self.max_ongoing_requests is None:
            return None
        return self.replicas * self.max_ongoing_requests

    @property
    def saturated(self) -> bool:
        return (
            self.capacity is not None
            and self.ongoing_requests is not None
            and self.ongoing_requests >= self.capacity
        )


def symptom_of(health: QueueHealth, deployments: list[DeploymentHealth]) -> str | None:
    """The queue's own symptom, or for the AI queue a backlog that waits on Serve."""
    saturated = [d.deployment for d in deployments if d.saturated]
    if health.queue == Queue.AI.value and health.backlog and saturated:
        return (
            f"AI backlog while Serve is saturated ({', '.join(saturated)}): "
            "add Serve replicas"
        )
    return health.symptom


def with_ongoing(
    deployments: list[DeploymentHealth], ongoing_by_model: dict[str, int]
) -> list[DeploymentHealth]:
    """Deployments with the requests in flight to each model's application.

    Each model is an application of its own, named by the model id. The count comes
    from the model card, which one replica answers; Serve spreads requests evenly
    over replicas, so the deployment's load is that replica's times their number.
    """
    return [
        replace(d, ongoing_requests=ongoing_by_model[d.application] * d.replicas)
        if d.application in ongoing_by_model
        else d
        for d in deployments
    ]


def serve_deployments(applications: dict) -> list[DeploymentHealth]:
    """The deployments in a Serve REST `applications` payload."""
    rows = []
    for app_name, app in sorted(applications.items()):
        for name, deployment in sorted(app.get("deployments", {}).items()):
            config = deployment.get("deployment_config", {})
            rows.append(
                DeploymentHealth(
                    application=app_name,
                    deployment=name,
                    status=deployment.get("status", "UNKNOWN"),
                    replicas=len(deployment.get("replicas", [])),
                    target_replicas=deployment.get("target_num_replicas", 0),
                    max_ongoing_requests=config.get("max_ongoing_requests"),
                )
            )
    return rows


async def describe_queues(client: Client) -> list[QueueHealth]:
    """Every (queue, task type) pair that carries work: workflow tasks on the
    workflow queue, activity tasks on all three."""
    pairs = [(WORKFLOW_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)] + [
        (queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) for queue in Queue
    ]
    return [await _describe(client, queue, task_type) for queue, task_type in pairs]


async def _describe(client: Client, queue: Queue, task_type: int) -> QueueHealth:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(
                name=queue.value, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
            ),
            task_queue_type=task_type,  # type: ignore[arg-type]
            report_stats=True,
            report_pollers=True,
        )
    )
    stats = response.stats
    return QueueHealth(
        queue=queue.value,
        tasks="workflow"
        if task_type == TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        else "activity",
        backlog=stats.approximate_backlog_count,
        backlog_age_s=stats.approximate_backlog_age.ToTimedelta().total_seconds(),
        add_rate=stats.tasks_add_rate,
        dispatch_rate=stats.tasks_dispatch_rate,
        pollers=len(response.pollers),
    )
