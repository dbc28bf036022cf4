"""Backpressure from Serve to the AI worker's task slots.

Serve takes at most `replicas x max_ongoing_requests` requests per deployment at once;
more wait inside Serve, where they time out and nobody sees them. So the AI worker
reads each deployment's capacity from Serve's REST API, shares it with the other AI
workers polling the queue, and sizes two things from its share: the HTTP client's
requests in flight per model, and the worker's own activity slots. A slow or shrunken
model then leaves tasks in Temporal's backlog, which operators see and autoscalers
scale on, instead of in Serve's queue.
"""

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)

logger = logging.getLogger(__name__)

# Which Serve application (one per model, see serve_config.yaml) answers each kind of
# request the AI activities send.
APPLICATION_OF = {"embed": "embedder", "chat": "summarizer"}


class AdjustableLimit:
    """A counting semaphore whose size can change while permits are out.

    Shrinking never revokes a permit: holders finish, and new ones wait until the
    count is under the new size. Safe to release from any thread, since the SDK may
    release slots outside the event loop.
    """

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._in_use = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()

    @property
    def size(self) -> int:
        return self._size

    @property
    def in_use(self) -> int:
        return self._in_use

    async def acquire(self) -> None:
        while True:
            loop = asyncio.get_running_loop()
            with self._lock:
                if self._in_use < self._size:
                    self._in_use += 1
                    return
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                with self._lock:
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))
                raise

    def try_acquire(self) -> bool:
        with self._lock:
            if self._in_use < self._size:
                self._in_use += 1
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1
            self._wake()

    def resize(self, size: int) -> None:
        with self._lock:
            self._size = max(1, size)
            self._wake()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.release()

    def _wake(self) -> None:
        # Woken waiters compete again for the free permits, so waking one per free
        # permit is enough and never over-grants.
        for _ in range(min(self._size - self._in_use, len(self._waiters))):
            loop, waiter = self._waiters.popleft()
            loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LimitSlotSupplier(CustomSlotSupplier):
    """Activity slots handed out by an AdjustableLimit."""

    def __init__(self, limit: AdjustableLimit) -> None:
        self.limit = limit

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        await self.limit.acquire()
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        return SlotPermit() if self.limit.try_acquire() else None

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        self.limit.release()


@dataclass(frozen=True)
class Shares:
    """This worker's part of Serve's capacity."""

    capacity: dict[str, int]  # per request kind, the whole deployment's
    workers: int
    requests: dict[str, int]  # per request kind, this worker's
    activity_slots: int


def shares_of(capacity: dict[str, int], workers: int, max_slots: int) -> Shares:
    """Split each deployment's capacity evenly among the AI workers; the activity
    slots follow the scarcest one, so every running activity can have a request in
    flight, and never exceed the queue's configured limit."""
    workers = max(1, workers)
    requests = {kind: max(1, total // workers) for kind, total in capacity.items()}
    slots = min([max_slots, *requests.values()])
    return Shares(capacity, workers, requests, max(1, slots))


def deployment_capacity(applications: dict) -> dict[str, int]:
    """Capacity per request kind from a Serve REST `applications` payload: running
    replicas times their `max_ongoing_requests`, over the deployments of the model's
    application (during a rollout, old and new replicas both count). Kinds whose
    application is missing or has no running replica are left out (the previous
    limits stay)."""
    capacity = {}
    for kind, application in APPLICATION_OF.items():
        deployments = applications.get(application, {}).get("deployments", {})
        total = 0
        for deployment in deployments.values():
            limit = deployment.get("deployment_config", {}).get("max_ongoing_requests")
            running = sum(
                replica.get("state") == "RUNNING"
                for replica in deployment.get("replicas", [])
            )
            total += running * int(limit or 0)
        if total:
            capacity[kind] = total
    return capacity


class ServeBackpressure:
    """Keeps the AI worker's limits in step with Serve's capacity."""

    def __init__(
        self,
        dashboard_url: str,
        token: Callable[[], str | None],
        client: Client,
        task_queue: str,
        max_slots: int,
        request_limits: dict[str, AdjustableLimit],
        slot_limit: AdjustableLimit,
        on_change: Callable[[Shares], None] = lambda _: None,
        interval_s: float = 5.0,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=dashboard_url.rstrip("/"), timeout=10)
        self._token = token
        self.client = client
        self.task_queue = task_queue
        self.max_slots = max_slots
        self.request_limits = request_limits
        self.slot_limit = slot_limit
        self.on_change = on_change
        self.interval_s = interval_s
        self.shares: Shares | None = None
        self._failing = False

    async def refresh(self) -> Shares | None:
        """Read capacity and pollers once and apply them; on failure keep the
        current limits (logged once per outage)."""
        try:
            capacity = deployment_capacity(await self._applications())
            workers = await self._ai_workers()
        except (httpx.HTTPError, ValueError, RPCError) as err:
            if not self._failing:
                logger.warning("Serve capacity unknown, limits unchanged: %s", err)
            self._failing = True
            return self.shares
        self._failing = False
        if not capacity:
            return self.shares
        shares = shares_of(capacity, workers, self.max_slots)
        for kind, limit in self.request_limits.items():
            if kind in shares.requests:
                limit.resize(shares.requests[kind])
        self.slot_limit.resize(shares.activity_slots)
        if shares != self.shares:
            logger.info(
                "Serve capacity %s over %d AI worker(s): %d activity slots, "
                "requests in flight %s",
                shares.capacity,
                shares.workers,
                shares.activity_slots,
                shares.requests,
            )
            self.on_change(shares)
        self.shares = shares
        return shares

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _applications(self) -> dict:
        token = self._token()
        response = await self._http.get(
            "/api/serve/applications/",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        response.raise_for_status()
        return response.json().get("applications", {})

    async def _ai_workers(self) -> int:
        """Distinct workers polling the AI queue for activities, this one included."""
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(
                    name=self.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        return max(1, len({poller.identity for poller in response.pollers}))
