"""The operator's view on the real stack: worker metrics, the Grafana dashboard's
queries, and backpressure from Serve's capacity to the AI worker's task slots.

The workers run as real `heysh worker` processes with their metrics endpoints on, in
the namespace the fault tests use, so their counters hold only this module's work.
"""

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from orchestration.blobs import LocalBlobStore
from orchestration.config import Settings
from orchestration.queues import Queue
from orchestration.stack import Stack
from orchestration.submission import Submission, outcome_of, submit
from ray_serve.registry import deployment_entry
from tests.conftest import BAD_INPUT, REPO, free_port
from tests.worker_processes import TIERS, WORDS, WorkerProcesses

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DASHBOARD = REPO / "observability" / "grafana-dashboard.json"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
METRIC = re.compile(r"\b((?:heysh|temporal|ray)_[a-z_]+)\b")


class Workers:
    def __init__(self, processes: WorkerProcesses, ports: dict[str, int]) -> None:
        self.processes = processes
        self.ports = ports
        self.logs: dict[str, Path] = {}

    def scrape(self, tier: str) -> list[tuple[str, dict[str, str], float]]:
        return scrape(f"http://127.0.0.1:{self.ports[tier]}/metrics")


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (name, labels, value)."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    samples = []
    for line in response.text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(LABEL.findall(match.group(3) or ""))
            samples.append((match.group(1), labels, float(match.group(4))))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample, sample_labels, value in samples
        if sample == name and labels.items() <= sample_labels.items()
    )


@pytest.fixture(scope="module")
def workers(
    settings: Settings, postgres: str, serve: str, tmp_path_factory
) -> Iterator[Workers]:
    processes = WorkerProcesses(settings, tmp_path_factory.mktemp("ops-workers"))
    running = Workers(processes, {tier: free_port() for tier in TIERS})
    try:
        for tier in TIERS:
            running.logs[tier] = processes.start(
                tier,
                {
                    "HEYSH_WORKER_METRICS_PORT": str(running.ports[tier]),
                    # Follow Serve's capacity closely so the test need not wait long.
                    "HEYSH_SERVE_CAPACITY_INTERVAL_S": "1",
                },
            )
        yield running
    finally:
        processes.stop_all()


def text_document(folder: Path, tag: str, number: int, words: int = 400) -> Path:
    text = " ".join(
        WORDS[(number * 5 + i * (number + 2)) % len(WORDS)] for i in range(words)
    )
    path = folder / f"{tag}-{number}.txt"
    path.write_text(f"{tag} {number}. {text}.\n")
    return path


async def test_workers_export_sdk_and_pipeline_metrics(
    fault_client: Client, settings: Settings, workers: Workers, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(settings.blob_directory)
    good = await submit(fault_client, blobs, text_document(tmp_path, "metrics", 1))
    bad = await submit(fault_client, blobs, BAD_INPUT / "empty.txt")
    done, failed = await asyncio.wait_for(
        asyncio.gather(outcome_of(good), outcome_of(bad)), timeout=300
    )
    assert done.result is not None, done.error_message
    assert failed.error_type

    general = workers.scrape("general")
    assert total(general, "heysh_documents_processed", status="completed") >= 1
    assert (
        total(
            general,
            "heysh_documents_processed",
            status="failed",
            error_type=failed.error_type,
        )
        >= 1
    )

    ai = workers.scrape("ai")
    model = done.result.embedding_model
    assert (
        total(
            ai, "heysh_chunks_embedded", model=model.name, model_version=model.version
        )
        >= done.result.chunk_count
    )
    assert total(
        ai,
        "temporal_activity_execution_latency_count",
        activity_type="analyze_document",
    )
    slot_metrics = {
        name
        for name, labels, _ in ai
        if name.startswith("temporal_worker_task_slots")
        and labels.get("task_queue") == Queue.AI.value
    }
    assert slot_metrics, sorted({name for name, _, _ in ai})
    assert total(ai, "heysh_serve_capacity", application="embedder") == 64
    assert 1 <= total(ai, "heysh_ai_activity_slot_limit") <= 5

    storage = workers.scrape("storage")
    assert total(
        storage,
        "temporal_activity_execution_latency_count",
        activity_type="index_document_vectors",
    )

    # Serve's own metrics stay reachable on Ray's export port.
    serve_names = await serve_metric_names(settings)
    assert any(name.startswith("ray_serve_") for name in serve_names)


async def serve_metric_names(
    settings: Settings, wanted: set[str] | None = None, timeout_s: float = 90
) -> set[str]:
    """Ray exports Serve's metrics every few seconds, each once it has a value: wait
    for the `wanted` names (or any Serve metric)."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{settings.ray_metrics_port}/metrics"
    while True:
        try:
            names = {name for name, _, _ in scrape(url)}
        except httpx.HTTPError:
            names = set()
        if wanted is not None and wanted <= names:
            return names
        if wanted is None and any(name.startswith("ray_serve_") for name in names):
            return names
        missing = sorted((wanted or {"ray_serve_*"}) - names)
        assert time.monotonic() < deadline, f"not exported at {url}: {missing}"
        await asyncio.sleep(2)


async def test_every_dashboard_query_names_a_metric_the_stack_exports(
    settings: Settings, workers: Workers
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert queries
    named = {query: set(METRIC.findall(query)) for query in queries}
    for query, names in named.items():
        assert names, query
    wanted = set().union(*named.values())

    # Serve's request metrics exist once it has served a request.
    async with httpx.AsyncClient(base_url=settings.serve_url, timeout=60) as http:
        response = await http.post(
            "/v1/embeddings", json={"model": "embedder", "input": ["metrics"]}
        )
        response.raise_for_status()
    ray_names = {name for name in wanted if name.startswith("ray_")}
    exported = {
        name for tier in TIERS for name, _, _ in workers.scrape(tier)
    } | await serve_metric_names(settings, ray_names)
    for query, names in named.items():
        for name in names:
            assert name in exported, f"{name} (in {query!r}) is not exported"


async def test_a_shrunk_serve_grows_the_temporal_backlog_not_serve_queue(
    fault_client: Client,
    settings: Settings,
    stack: Stack,
    workers: Workers,
    tmp_path: Path,
) -> None:
    """With the Embedder cut to two requests at once, the AI worker drops to at most
    two activity slots: the other documents wait in Temporal's backlog, where
    operators see them, and Serve never holds more than it can take."""
    small = shrunk_serve_config(settings.serve_config, tmp_path, max_ongoing=2)
    logged = workers.logs["ai"].stat().st_size
    stack_small = Stack(settings.model_copy(update={"serve_config": small}))
    try:
        stack_small.deploy_serve()
        await wait_for_log(workers.logs["ai"], "{'embed': 2, ", timeout_s=120)
        assert total(workers.scrape("ai"), "heysh_ai_activity_slot_limit") <= 2

        blobs = LocalBlobStore(settings.blob_directory)
        # Long documents, submitted together: each takes the Embedder a while, so
        # more of them reach the AI queue at once than two slots can take.
        submissions = await asyncio.gather(
            *(
                submit(
                    fault_client,
                    blobs,
                    text_document(tmp_path, "backpressure", n, words=2500),
                    summarize=False,
                )
                for n in range(8)
            )
        )
        outcomes = asyncio.gather(*(outcome_of(s) for s in submissions))
        peak_in_flight = peak_waiting = 0
        async with httpx.AsyncClient(base_url=settings.serve_url) as http:
            while not outcomes.done():
                cards = (await http.get("/v1/models", timeout=30)).json()["data"]
                [embedder] = [card for card in cards if card["id"] == "embedder"]
                peak_in_flight = max(peak_in_flight, embedder["ongoing_requests"])
                peak_waiting = max(
                    peak_waiting, await analyses_waiting(fault_client, submissions)
                )
                await asyncio.sleep(0.3)
        for outcome in await outcomes:
            assert outcome.result is not None, outcome.error_message
        assert peak_in_flight <= 2
        # Scheduled and not yet started: the task waits in Temporal's queue.
        assert peak_waiting >= 1, "no analysis ever waited in Temporal's queue"
    finally:
        stack.deploy_serve()
    await wait_for_log(workers.logs["ai"], "{'embed': 64, ", 120, after=logged)
    assert total(workers.scrape("ai"), "heysh_ai_activity_slot_limit") == 5


def shrunk_serve_config(config: Path, folder: Path, max_ongoing: int) -> Path:
    data = yaml.safe_load(config.read_text())
    deployment_entry(data, "Embedder")["max_ongoing_requests"] = max_ongoing
    path = folder / "serve_config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def wait_for_log(log: Path, text: str, timeout_s: float, after: int = 0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_bytes()[after:].decode(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never logged in {log}"
        await asyncio.sleep(0.5)


async def analyses_waiting(client: Client, submissions: list[Submission]) -> int:
    """analyze_document activities scheduled on the AI queue and not yet started."""
    waiting = 0
    for submission in submissions:
        description = await submission.handle.describe()
        waiting += sum(
            pending.activity_type.name == "analyze_document"
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
            for pending in description.raw_description.pending_activities
        )
    return waiting
