"""Run a batch so that one request the model cannot handle fails alone.

The whole batch runs in one model call; if that call raises, each request is run on its
own, and only those that still fail get an error outcome. Model calls are blocking, so
they run in a thread and the replica keeps accepting requests meanwhile.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("ray.serve")

RequestT = TypeVar("RequestT")
OutcomeT = TypeVar("OutcomeT")


async def run_isolated(
    run: Callable[[list[RequestT]], list[OutcomeT]],
    requests: list[RequestT],
    on_error: Callable[[Exception], OutcomeT],
) -> list[OutcomeT]:
    try:
        return await asyncio.to_thread(run, requests)
    except Exception:
        logger.exception(
            "batch of %d requests failed; retrying one by one", len(requests)
        )
    outcomes: list[OutcomeT] = []
    for request in requests:
        try:
            outcomes.extend(await asyncio.to_thread(run, [request]))
        except Exception as err:
            outcomes.append(on_error(err))
    return outcomes
