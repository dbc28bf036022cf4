"""Model rollouts on the real Serve cluster: a new embedder version rolls out and back
under a steady client load without one failed request, responses switch to the new
version, the other model is left alone, and a reindex moves every stored vector to
the version that runs."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from orchestration.blobs import LocalBlobStore
from orchestration.config import Settings
from orchestration.errors import DocumentError
from orchestration.models import ReindexInput, ReindexResult, reindex_workflow_id
from orchestration.queues import WORKFLOW_QUEUE
from orchestration.reindex_workflow import ReindexWorkflow
from orchestration.search import search_chunks
from orchestration.stack import Stack
from orchestration.submission import outcome_of, submit
from ray_serve.inference_client import InferenceClient
from ray_serve.rollout import changed_copy
from storage_tier.vectors import PgVectorStore
from tests.conftest import MODELS_NAMESPACE, SAMPLES, in_process_workers

pytestmark = pytest.mark.stack

NEW_VERSION = "rollout-test-2"


@dataclass
class Load:
    """What a client loop saw: every response's model version, in order, and every
    request that did not get a 200 with vectors."""

    versions: list[str] = field(default_factory=list)
    chat_versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def client_loop(
    base_url: str, stop: asyncio.Event, load: Load, embedders: int = 8
) -> None:
    """`embedders` concurrent embedding callers and one chat caller, back to back,
    until stopped."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:

        async def embed(caller: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                text = f"caller {caller} request {n}: durable workflows and batching"
                try:
                    response = await http.post(
                        "/v1/embeddings", json={"model": "embedder", "input": [text]}
                    )
                    body = response.json()
                    if response.status_code != 200 or len(body["data"]) != 1:
                        load.failures.append(f"{response.status_code}: {body}")
                        continue
                    load.versions.append(body["model_version"])
                except (httpx.HTTPError, ValueError, KeyError) as err:
                    load.failures.append(f"{type(err).__name__}: {err}")

        async def chat() -> None:
            while not stop.is_set():
                try:
                    response = await http.post(
                        "/v1/chat/completions",
                        json={
                            "messages": [{"role": "user", "content": "Say yes."}],
                            "max_tokens": 4,
                        },
                    )
                    if response.status_code != 200:
                        load.failures.append(f"chat {response.status_code}")
                        continue
                    load.chat_versions.append(response.json()["model_version"])
                except (httpx.HTTPError, ValueError, KeyError) as err:
                    load.failures.append(f"chat {type(err).__name__}: {err}")

        await asyncio.gather(*(embed(n) for n in range(embedders)), chat())


def replica_ids(stack: Stack, application: str) -> set[str]:
    applications = stack.serve_applications()
    return {
        replica["replica_id"]
        for deployment in applications[application]["deployments"].values()
        for replica in deployment["replicas"]
    }


async def test_a_new_version_rolls_out_and_back_under_load_without_a_failed_request(
    stack: Stack, serve: str
) -> None:
    admin = stack.serve_admin()
    running = admin.live_config()
    assert running is not None
    old_version = next(
        entry["args"]["model"]["version"]
        for entry in running["applications"]
        if entry["name"] == "embedder"
    )
    summarizer_replicas = replica_ids(stack, "summarizer")
    load, stop = Load(), asyncio.Event()
    loop = asyncio.create_task(client_loop(serve, stop, load))
    try:
        await asyncio.sleep(3)  # the load runs before anything changes
        before_deploy = len(load.versions)
        await asyncio.to_thread(
            admin.deploy,
            changed_copy(running, [f"embedder.version={NEW_VERSION}"]),
            300,
        )
        after_deploy = len(load.versions)
        await asyncio.sleep(3)
        before_rollback = len(load.versions)
        await asyncio.to_thread(admin.rollback, 300)
        after_rollback = len(load.versions)
        await asyncio.sleep(3)
    finally:
        stop.set()
        await loop

    assert load.failures == [], load.failures[:5]
    versions = load.versions
    assert before_deploy > 0 and set(versions[:before_deploy]) == {old_version}
    # Once the deploy returns, every answer comes from the new version...
    assert set(versions[after_deploy:before_rollback]) == {NEW_VERSION}
    # ...and once the rollback returns, from the old one again.
    assert versions[after_rollback:] and set(versions[after_rollback:]) == {old_version}
    # Requests went on during both rollouts: none waited for the whole of one.
    assert after_deploy > before_deploy and after_rollback > before_rollback
    # The other model's application was not touched, and answered throughout.
    assert replica_ids(stack, "summarizer") == summarizer_replicas
    assert load.chat_versions


async def test_a_tunable_changes_in_place_without_new_replicas(
    stack: Stack, serve: str
) -> None:
    admin = stack.serve_admin()
    running = admin.live_config()
    assert running is not None
    before = replica_ids(stack, "embedder")
    await asyncio.to_thread(
        admin.deploy, changed_copy(running, ["embedder.max_batch_size=4"]), 120
    )
    try:
        deployed = stack.serve_applications()["embedder"]["deployments"]["Embedder"]
        assert deployed["deployment_config"]["user_config"]["max_batch_size"] == 4
        assert replica_ids(stack, "embedder") == before
    finally:
        await asyncio.to_thread(admin.rollback, 120)
    assert replica_ids(stack, "embedder") == before


# ---- reindex ---------------------------------------------------------------------


@pytest.fixture
async def models_workers(
    settings: Settings, temporal_env, postgres: str, serve: str, tmp_path
) -> AsyncIterator[tuple[Client, Settings]]:
    """The three tiers on a database of their own, in a namespace of their own, so a
    reindex sees only the documents this test put there."""
    database = f"heysh_models_{uuid.uuid4().hex[:8]}"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
    own = settings.model_copy(
        update={
            "database_url": settings.database_url.rsplit("/", 1)[0] + f"/{database}",
            "serve_backpressure": False,
        }
    )
    client = await Client.connect(
        settings.temporal_address,
        namespace=MODELS_NAMESPACE,
        data_converter=pydantic_data_converter,
    )
    async with in_process_workers(client, own):
        yield client, own


async def test_reindex_moves_every_document_to_the_running_version(
    stack: Stack, models_workers: tuple[Client, Settings]
) -> None:
    client, own = models_workers
    blobs = LocalBlobStore(own.blob_directory)
    paths = sorted(SAMPLES.iterdir())
    submissions = [await submit(client, blobs, path, summarize=False) for path in paths]
    outcomes = [await outcome_of(submission) for submission in submissions]
    assert all(outcome.result for outcome in outcomes), outcomes
    old_version = outcomes[0].result.embedding_model.version  # type: ignore[union-attr]

    admin = stack.serve_admin()
    running = admin.live_config()
    assert running is not None
    await asyncio.to_thread(
        admin.deploy, changed_copy(running, [f"embedder.version={NEW_VERSION}"]), 300
    )
    try:
        started = time.monotonic()
        # Batches of two, one batch per run: the five documents take three runs,
        # carried over by continue-as-new.
        handle = await client.start_workflow(
            ReindexWorkflow.run,
            ReindexInput(model="embedder", batch_size=2, batches_per_run=1),
            id=reindex_workflow_id("embedder"),
            task_queue=WORKFLOW_QUEUE.value,
        )
        result = await handle.result()
        elapsed = time.monotonic() - started
        assert isinstance(result, ReindexResult)
        runs = await continued_runs(client, handle.id)
        assert runs == 3, f"{runs} runs"
        assert (result.reindexed, result.failed) == (len(paths), 0)
        assert result.model.version == NEW_VERSION

        pool = await asyncpg.connect(own.database_url)
        try:
            rows = await pool.fetch(
                "SELECT embedding_model_version, count(*) FROM documents GROUP BY 1"
            )
            assert {r[0]: r[1] for r in rows} == {NEW_VERSION: len(paths)}
            chunk_versions = await pool.fetch(
                "SELECT DISTINCT model_version FROM chunks"
            )
            assert [r[0] for r in chunk_versions] == [NEW_VERSION]
            chunks = await pool.fetchval("SELECT count(*) FROM chunks")
            claimed = await pool.fetchval("SELECT sum(chunk_count) FROM documents")
            assert chunks == claimed
        finally:
            await pool.close()

        # Search embeds the query with the running version and finds the documents.
        from storage_tier.database import create_pool

        pool = await create_pool(own.database_url, 2)
        inference = InferenceClient(own.serve_url, timeout_s=60)
        try:
            hits = await search_chunks(
                inference, PgVectorStore(pool), "brewing coffee at altitude", 3
            )
        finally:
            await inference.aclose()
            await pool.close()
        assert hits and hits[0].document_name == "field-notes-coffee.txt"

        # A second reindex finds nothing left to do.
        again = await client.execute_workflow(
            ReindexWorkflow.run,
            ReindexInput(model="embedder"),
            id=f"{reindex_workflow_id('embedder')}-again",
            task_queue=WORKFLOW_QUEUE.value,
        )
        assert (again.reindexed, again.failed) == (0, 0)
        print(f"reindexed {len(paths)} documents in {elapsed:.1f} s")
    finally:
        await asyncio.to_thread(admin.rollback, 300)
    assert admin.live_versions()["embedder"] == old_version


async def continued_runs(client: Client, workflow_id: str) -> int:
    """How many runs the workflow id went through, following each run back to the
    one that continued as new into it."""
    runs, run_id = 0, None
    while True:
        history = await client.get_workflow_handle(
            workflow_id, run_id=run_id
        ).fetch_history()
        runs += 1
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            return runs


async def test_reindex_refuses_a_model_without_vectors(
    models_workers: tuple[Client, Settings],
) -> None:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    client, _ = models_workers
    with pytest.raises(WorkflowFailureError) as failure:
        await client.execute_workflow(
            ReindexWorkflow.run,
            ReindexInput(model="summarizer"),
            id=f"reindex-summarizer-{uuid.uuid4().hex[:6]}",
            task_queue=WORKFLOW_QUEUE.value,
        )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == DocumentError.INVALID_INPUT
    assert "summarizer" in cause.message
