"""Heartbeat an activity while it waits on a thread or a long request.

A dead worker is then noticed within the heartbeat timeout rather than the whole
start-to-close timeout. Heartbeats must be sent from the activity's event loop, so
work in a thread reports its progress through `details` instead of heartbeating.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity


@asynccontextmanager
async def heartbeating(
    details: Callable[[], Any] | None = None, interval_s: float = 5.0
) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(details())
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
