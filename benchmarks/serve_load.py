"""Load on the Serve route: one text per request, a bounded number in flight.

Also switches the Embedder's batch size in place (a `user_config`-only deploy, which
reconfigures the running replica without restarting it).
"""

import asyncio
import time

import httpx
import yaml

from orchestration.stack import Stack
from ray_serve.registry import deployment_entry
from ray_serve.rollout import changed_copy


async def http_rate(base_url: str, texts: list[str], concurrency: int) -> float:
    """Texts per second through POST /v1/embeddings, `concurrency` requests at once."""
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0)
    ) as http:

        async def post(text: str) -> None:
            # The encoding the AI tier's client asks for.
            response = await http.post(
                "/v1/embeddings",
                json={
                    "model": "embedder",
                    "input": [text],
                    "encoding_format": "base64",
                },
            )
            response.raise_for_status()
            if len(response.json()["data"]) != 1:
                raise RuntimeError(
                    "the route answered with the wrong number of vectors"
                )

        # Open the connections and wake the replica before the clock starts.
        await asyncio.gather(*(post(text) for text in texts[:concurrency]))

        position = iter(range(len(texts)))

        async def sender() -> None:
            for index in position:
                await post(texts[index])

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return len(texts) / (time.perf_counter() - started)


def embedder_user_config(stack: Stack) -> dict:
    config = yaml.safe_load(stack.settings.serve_config.read_text())
    return dict(deployment_entry(config, "Embedder").get("user_config") or {})


def reconfigure_embedder(stack: Stack, **user_config: object) -> None:
    """Deploy what runs with the Embedder's user_config changed (Serve reconfigures
    the replica in place), and wait until the replica has taken it."""
    admin = stack.serve_admin()
    running = admin.live_config()
    if running is None:
        raise RuntimeError("Serve runs no config to change")
    settings = [f"embedder.{key}={value}" for key, value in user_config.items()]
    admin.deploy(changed_copy(running, settings), timeout_s=300, keep_previous=False)
