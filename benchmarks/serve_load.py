"""Load on the Serve route: one text per request, a bounded number in flight.

Also switches the Embedder's batch size in place (a `user_config`-only `serve deploy`,
which reconfigures the running replica without restarting it).
"""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from orchestration.stack import Stack


async def http_rate(base_url: str, texts: list[str], concurrency: int) -> float:
    """Texts per second through POST /v1/embeddings, `concurrency` requests at once."""
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0)
    ) as http:

        async def post(text: str) -> None:
            response = await http.post(
                "/v1/embeddings", json={"model": "embedder", "input": [text]}
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
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "Embedder":
            return dict(deployment.get("user_config", {}))
    return {}


def reconfigure_embedder(stack: Stack, **user_config: object) -> None:
    """Deploy the stack's Serve config with the Embedder's user_config changed, and
    wait until the running replica has taken it."""
    path = stack.effective_serve_config()
    config = yaml.safe_load(path.read_text())
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "Embedder":
            deployment.setdefault("user_config", {}).update(user_config)
    changed = Path(path.with_name("serve_config.bench.yaml"))
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    deploy = subprocess.run(
        [
            str(Path(sys.executable).parent / "serve"),
            "deploy",
            str(changed),
            "--address",
            stack.dashboard_url,
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if deploy.returncode != 0:
        raise RuntimeError(f"serve deploy failed: {deploy.stderr[-2000:]}")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _embedder_has(stack, user_config):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Embedder did not take {user_config} within 120 s")


def _embedder_has(stack: Stack, user_config: dict[str, object]) -> bool:
    app = stack.serve_applications().get("heysh", {})
    deployment = app.get("deployments", {}).get("Embedder", {})
    deployed = {
        item["name"]: item
        for item in (app.get("deployed_app_config") or {}).get("deployments", [])
    }
    current = deployed.get("Embedder", {}).get("user_config") or {}
    return (
        app.get("status") == "RUNNING"
        and deployment.get("status") == "HEALTHY"
        and all(current.get(key) == value for key, value in user_config.items())
    )
