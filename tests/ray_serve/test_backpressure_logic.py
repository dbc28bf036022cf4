"""The limits that follow Serve's capacity: resizing, sharing and reading capacity."""

import asyncio
import threading

import pytest

from orchestration.queue_health import (
    DeploymentHealth,
    QueueHealth,
    symptom_of,
    with_ongoing,
)
from ray_serve.backpressure import AdjustableLimit, deployment_capacity, shares_of


async def test_a_shrunk_limit_lets_holders_finish_and_admits_no_one_new() -> None:
    limit = AdjustableLimit(3)
    for _ in range(3):
        await limit.acquire()
    limit.resize(1)
    waiter = asyncio.create_task(limit.acquire())
    limit.release()
    limit.release()
    await asyncio.sleep(0.01)
    assert not waiter.done(), "one permit is still out, and the limit is one"
    limit.release()
    await asyncio.wait_for(waiter, 1)
    assert limit.in_use == 1


async def test_growing_the_limit_wakes_waiters() -> None:
    limit = AdjustableLimit(1)
    await limit.acquire()
    waiters = [asyncio.create_task(limit.acquire()) for _ in range(3)]
    await asyncio.sleep(0.01)
    limit.resize(4)
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert limit.in_use == 4
    assert not limit.try_acquire()


async def test_a_release_from_another_thread_wakes_the_loop() -> None:
    limit = AdjustableLimit(1)
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0.01)
    thread = threading.Thread(target=limit.release)
    thread.start()
    thread.join()
    await asyncio.wait_for(waiter, 1)
    assert limit.in_use == 1


async def test_a_cancelled_waiter_takes_no_permit() -> None:
    limit = AdjustableLimit(1)
    await limit.acquire()
    waiter = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limit.release()
    assert limit.in_use == 0
    assert limit.try_acquire()


def test_capacity_is_shared_among_ai_workers_and_slots_follow_the_scarcest() -> None:
    shares = shares_of({"embed": 64, "chat": 32}, workers=1, max_slots=5)
    assert shares.activity_slots == 5
    assert shares.requests == {"embed": 64, "chat": 32}

    shares = shares_of({"embed": 4, "chat": 32}, workers=2, max_slots=5)
    assert shares.requests == {"embed": 2, "chat": 16}
    assert shares.activity_slots == 2

    # A worker always keeps one slot, or nothing would ever drain.
    assert shares_of({"embed": 1}, workers=8, max_slots=5).activity_slots == 1


def test_capacity_counts_only_running_replicas() -> None:
    applications = {
        "embedder": {
            "deployments": {
                "Embedder": {
                    "deployment_config": {"max_ongoing_requests": 64},
                    "replicas": [{"state": "RUNNING"}, {"state": "STARTING"}],
                },
            }
        },
        "summarizer": {
            "deployments": {
                "Summarizer": {
                    "deployment_config": {"max_ongoing_requests": 32},
                    "replicas": [],
                },
            }
        },
    }
    assert deployment_capacity(applications) == {"embed": 64}
    assert deployment_capacity({"other": applications["embedder"]}) == {}


def _queue(name: str, backlog: int) -> QueueHealth:
    return QueueHealth(name, "activity", backlog, 5.0, 1.0, 1.0, pollers=1)


def test_an_ai_backlog_behind_a_saturated_deployment_is_named() -> None:
    embedder = DeploymentHealth("embedder", "Embedder", "HEALTHY", 1, 1, 4)
    [busy] = with_ongoing([embedder], {"embedder": 4})
    [idle] = with_ongoing([embedder], {"embedder": 1})
    assert busy.saturated and not idle.saturated

    symptom = symptom_of(_queue("ai-processing-queue", 10), [busy])
    assert symptom is not None and "Serve is saturated (Embedder)" in symptom
    assert symptom_of(_queue("ai-processing-queue", 10), [idle]) is None
    assert symptom_of(_queue("ai-processing-queue", 0), [busy]) is None
    assert symptom_of(_queue("storage-queue", 10), [busy]) is None
