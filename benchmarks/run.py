"""One benchmark run: a private stack on free ports, every row measured, all stopped.

The stack lives in its own temporary state directory with ports above 20000, so the
run never meets another stack on the machine; whatever happens, every process it
started is stopped by process id before the run returns.
"""

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from benchmarks import ceiling as ceiling_model
from benchmarks import memory, serve_load
from benchmarks.corpus import (
    SIZES,
    CorpusSize,
    Document,
    corpus_chunks,
    document_chunks,
    evenly_spaced,
    load_corpus,
    short_texts,
)
from benchmarks.report import Row, assemble, interval_union, percentile
from benchmarks.workflows import WORKFLOW_QUEUE, AnalyzeOnlyWorkflow
from orchestration.blobs import BlobStore, open_blob_store, text_key
from orchestration.client import connect
from orchestration.config import Settings
from orchestration.models import AnalysisInput
from orchestration.queues import Queue
from orchestration.stack import Stack
from orchestration.submission import outcome_of, submit

logger = logging.getLogger(__name__)

SEED_QUEUE = f"{Queue.AI.value}-seed"
OPTIONAL_ROWS = ("serve", "unbatched", "ai", "seed", "pipeline", "summaries", "latency")


@dataclass
class Options:
    size: str = "default"
    skip: frozenset[str] = frozenset()
    out: Path = Path(".heysh/bench/latest.json")
    concurrency: int = 64
    profile_dir: Path | None = None
    keep_state: bool = False


@dataclass
class Measured:
    rows: list[Row] = field(default_factory=list)
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    cold_start_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def free_ports(count: int) -> list[int]:
    """Distinct free ports above Ray's worker range (10002-19999)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Ray's client server takes the port after Ray's own.
        if port > 20000 and port not in ports and port + 1 not in ports:
            ports.append(port)
    return ports


def bench_settings(state: Path) -> Settings:
    temporal, ui, pg, serve, ray, dashboard, metrics, api = free_ports(8)
    return Settings(
        state_dir=state,
        temporal_address=f"127.0.0.1:{temporal}",
        temporal_ui_port=ui,
        database_url=f"postgresql://postgres@127.0.0.1:{pg}/heysh",
        serve_url=f"http://127.0.0.1:{serve}",
        ray_port=ray,
        ray_dashboard_port=dashboard,
        ray_metrics_port=metrics,
        api_port=api,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as `HEYSH_*` variables, for the processes the run starts."""
    return {
        "HEYSH_STATE_DIR": str(settings.resolved_state_dir),
        "HEYSH_TEMPORAL_ADDRESS": settings.temporal_address,
        "HEYSH_TEMPORAL_UI_PORT": str(settings.temporal_ui_port),
        "HEYSH_DATABASE_URL": settings.database_url,
        "HEYSH_SERVE_URL": settings.serve_url,
        "HEYSH_RAY_PORT": str(settings.ray_port),
        "HEYSH_RAY_DASHBOARD_PORT": str(settings.ray_dashboard_port),
        "HEYSH_RAY_METRICS_PORT": str(settings.ray_metrics_port),
        "HEYSH_API_PORT": str(settings.api_port),
        "HF_HUB_OFFLINE": "1",
    }


def machine_info() -> dict[str, Any]:
    import torch

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpus = os.cpu_count() or 0
    return {
        "cpu_count": cpus,
        "cpu_model": model,
        "memory_gib": round(memory_gib, 1),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "summary": f"{cpus} x {model}, {memory_gib:.0f} GiB, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads",
    }


# ---- processes the run starts ------------------------------------------------------


def start_stack(settings: Settings, log: Path) -> float:
    """`heysh up` against the private state dir; the seconds it took."""
    started = time.perf_counter()
    with open(log, "wb") as out:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "heysh"), "up"],
            env={**os.environ, **settings_env(settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"heysh up failed; see {log}")
    return time.perf_counter() - started


class SeedWorker:
    """The seed design's AI worker, as its own process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> int:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.seed_worker", SEED_QUEUE],
                env={**os.environ, **settings_env(self.settings)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 180
        while "worker polling" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the seed worker did not start; see {self.log}")
            time.sleep(0.5)
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Profiles:
    """py-spy recordings of the named processes while a row runs (with --profile)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def record(self, row: str, pids: dict[str, int]) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).parent / "py-spy")
        recorders = [
            subprocess.Popen(
                [
                    *(spy, "record", "--pid", str(pid), "--rate", "50"),
                    # Without --nonblocking py-spy pauses the process per sample.
                    *("--format", "raw", "--threads", "--nonblocking"),
                    *("-o", str(self.folder / f"{row}-{name}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]
        try:
            yield
        finally:
            for recorder in recorders:
                recorder.send_signal(signal.SIGINT)
            for recorder in recorders:
                try:
                    recorder.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    recorder.kill()


def process_pids(stack: Stack) -> dict[str, int]:
    """Pids of the processes worth profiling: Serve's parts and the AI worker."""
    pids = {}
    for name, processes in memory.component_processes(stack).items():
        for process in processes:
            with contextlib.suppress(Exception):
                command = " ".join(process.cmdline())
                for marker, label in (
                    ("ServeReplica:embedder:Embedder", "embedder"),
                    ("ProxyActor", "proxy"),
                ):
                    if marker in command:
                        pids[label] = process.pid
                if name == "worker ai" and "orchestration.cli" in command:
                    pids["ai-worker"] = process.pid
    return pids


# ---- rows -------------------------------------------------------------------------


def measure_ceilings(
    documents: list[Document], size: CorpusSize, measured: Measured
) -> tuple[list[str], list[str]]:
    embedder = ceiling_model.load_embedder()
    chunks = corpus_chunks(documents, embedder.max_tokens)
    shorts = short_texts(documents, size.short_texts)
    for key, label, texts in (
        ("ceiling", "1 ceiling: model in-process", chunks),
        ("ceiling_short", "1s ceiling, short chunks", shorts),
    ):
        logger.info("%s: %d texts", label, len(texts))
        found = ceiling_model.measure_ceiling(
            embedder, texts, evenly_spaced(texts, size.sweep_chunks)
        )
        sweep = ", ".join(f"{b}:{r:.0f}" for b, r in found.sweep.items())
        measured.rows.append(
            Row(
                key,
                label,
                found.rate,
                "chunks/s",
                baseline=key,
                detail=f"best batch {found.best_batch_size}; sweep {sweep}",
                extra={"sweep": found.sweep, "best_batch_size": found.best_batch_size},
            )
        )
    ceiling_model.release(embedder)
    return chunks, shorts


def measure_serve(
    stack: Stack,
    chunks: list[str],
    shorts: list[str],
    options: Options,
    profiles: Profiles,
    measured: Measured,
) -> None:
    url = stack.settings.serve_url
    concurrency = options.concurrency
    variants = [
        ("", "chunks", chunks, "ceiling"),
        ("_short", "short chunks", shorts, "ceiling_short"),
    ]
    if "serve" not in options.skip:
        config = serve_load.embedder_user_config(stack)
        for suffix, what, texts, baseline in variants:
            with profiles.record(f"serve-batched{suffix}", process_pids(stack)):
                rate = asyncio.run(serve_load.http_rate(url, texts, concurrency))
            measured.rows.append(
                Row(
                    f"serve_batched{suffix}",
                    f"2{suffix and 's'} serve batched, {what}",
                    rate,
                    "chunks/s",
                    baseline=baseline,
                    detail=f"HTTP, 1 text/request, {concurrency} in flight, "
                    f"max_batch_size {config.get('max_batch_size')}",
                )
            )
            logger.info("serve batched, %s: %.1f/s", what, rate)
    if "unbatched" not in options.skip:
        serve_load.reconfigure_embedder(stack, max_batch_size=1)
        try:
            for suffix, what, texts, baseline in variants:
                with profiles.record(f"serve-unbatched{suffix}", process_pids(stack)):
                    rate = asyncio.run(serve_load.http_rate(url, texts, concurrency))
                measured.rows.append(
                    Row(
                        f"serve_unbatched{suffix}",
                        f"3{suffix and 's'} serve unbatched, {what}",
                        rate,
                        "chunks/s",
                        baseline=baseline,
                        detail=f"max_batch_size 1, {concurrency} in flight",
                    )
                )
                logger.info("serve unbatched, %s: %.1f/s", what, rate)
        finally:
            serve_load.reconfigure_embedder(
                stack, **serve_load.embedder_user_config(stack)
            )


async def _stage_texts(
    blobs: BlobStore, documents: list[Document], prefix: str
) -> list[AnalysisInput]:
    inputs = []
    for number, document in enumerate(documents):
        document_id = f"{prefix}-{number:03d}"
        uri = await blobs.aput(text_key(document_id), document.text.encode())
        inputs.append(AnalysisInput(document_id=document_id, text_uri=uri))
    return inputs


async def analyze_only(
    client: Client, blobs: BlobStore, documents: list[Document], queue: str, prefix: str
) -> tuple[float, int]:
    """Seconds and chunks for every document's analyze_document on `queue`."""
    inputs = await _stage_texts(blobs, documents, prefix)
    started = time.perf_counter()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                AnalyzeOnlyWorkflow.run,
                args=[queue, analysis],
                id=f"{analysis.document_id}",
                task_queue=WORKFLOW_QUEUE,
            )
            for analysis in inputs
        )
    )
    results = await asyncio.gather(*(handle.result() for handle in handles))
    return time.perf_counter() - started, sum(r.chunk_count for r in results)


async def pipeline(
    client: Client,
    blobs: BlobStore,
    documents: list[Document],
    folder: Path,
    run: int,
    summarize: bool,
) -> tuple[float, int, int]:
    """Seconds, documents and chunks of DocumentProcessingWorkflow on each document."""
    paths = _write_variants(documents, folder / f"run-{run}", run)
    started = time.perf_counter()
    submissions = await asyncio.gather(
        *(submit(client, blobs, path, summarize=summarize) for path in paths)
    )
    outcomes = await asyncio.gather(*(outcome_of(s) for s in submissions))
    elapsed = time.perf_counter() - started
    failed = [o for o in outcomes if o.result is None]
    if failed:
        raise RuntimeError(
            f"{len(failed)} documents failed, e.g. {failed[0].submission.name}: "
            f"{failed[0].error_type}: {failed[0].error_message}"
        )
    chunks = sum(o.result.chunk_count for o in outcomes if o.result)
    return elapsed, len(outcomes), chunks


def _write_variants(documents: list[Document], folder: Path, run: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for document in documents:
        path = folder / document.name
        path.write_bytes(document.variant(run))
        paths.append(path)
    return paths


def activity_intervals(history: WorkflowHistory) -> list[tuple[float, float]]:
    started: dict[int, float] = {}
    intervals = []
    for event in history.events:
        when = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.event_id] = when
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            began = started.get(
                event.activity_task_completed_event_attributes.started_event_id
            )
            if began is not None:
                intervals.append((began, when))
    return intervals


async def latency(
    client: Client,
    blobs: BlobStore,
    documents: list[Document],
    folder: Path,
    ceiling_rate: float,
) -> Row:
    """One document at a time, summaries off: end-to-end seconds and the share of them
    that no activity was working (queueing, workflow tasks, submission)."""
    latencies, shares, model_shares = [], [], []
    paths = _write_variants(documents, folder / "latency", 3)
    for path in paths:
        started = time.perf_counter()
        submission = await submit(client, blobs, path, summarize=False)
        outcome = await outcome_of(submission)
        elapsed = time.perf_counter() - started
        if outcome.result is None:
            raise RuntimeError(f"{path.name}: {outcome.error_type}")
        history = await submission.handle.fetch_history()
        working = interval_union(activity_intervals(history))
        latencies.append(elapsed)
        shares.append(max(0.0, 1 - working / elapsed))
        model_shares.append(outcome.result.chunk_count / ceiling_rate / elapsed)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    orchestration = percentile(shares, 50)
    return Row(
        "latency",
        "7 one document, low load (p50)",
        p50,
        "s",
        ratio=percentile(model_shares, 50),
        detail=f"p95 {p95:.2f} s; orchestration {orchestration:.0%} of it; "
        f"{len(latencies)} docs of ~{len(document_chunks(documents[0].text, 256))} "
        "chunks; ratio: model time at ceiling / latency",
        extra={
            "p50_s": p50,
            "p95_s": p95,
            "orchestration_share_p50": orchestration,
            "latencies_s": latencies,
            "orchestration_shares": shares,
        },
    )


async def measure_temporal(
    stack: Stack,
    documents: list[Document],
    size: CorpusSize,
    options: Options,
    profiles: Profiles,
    measured: Measured,
    sampler: memory.PeakSampler,
) -> None:
    settings = stack.settings
    folder = settings.resolved_state_dir / "bench-documents"
    blobs = open_blob_store(settings.blob_store_url)
    ceiling_rate = next(row.value for row in measured.rows if row.key == "ceiling")
    client = await connect(settings)
    workflow_worker = Worker(
        client,
        task_queue=WORKFLOW_QUEUE,
        workflows=[AnalyzeOnlyWorkflow],
        max_concurrent_workflow_tasks=50,
    )
    warm_up = [min(documents, key=lambda d: len(d.text))]
    async with workflow_worker:
        if "ai" not in options.skip:
            await analyze_only(client, blobs, warm_up, Queue.AI.value, "warm-ai")
            with profiles.record("ai-path", process_pids(stack)):
                seconds, chunks = await analyze_only(
                    client, blobs, documents, Queue.AI.value, "ai"
                )
            measured.rows.append(
                Row(
                    "ai_path",
                    "4 AI path: analyze_document via Serve",
                    chunks / seconds,
                    "chunks/s",
                    baseline="ceiling",
                    detail=f"{len(documents)} docs, {chunks} chunks in {seconds:.1f} s",
                )
            )
            logger.info("AI path: %.1f chunks/s", chunks / seconds)

        if "seed" not in options.skip:
            seed = SeedWorker(settings, settings.resolved_state_dir / "seed-worker.log")
            try:
                pid = await asyncio.to_thread(seed.start)
                name = "seed worker (model in-process)"
                idle = memory.snapshot(stack, {name: pid})[name]
                measured.memory[name] = {"idle": idle, "load": idle}
                sampler.extra[name] = pid
                await analyze_only(client, blobs, warm_up, SEED_QUEUE, "warm-seed")
                with profiles.record("seed", {"seed-worker": pid}):
                    seconds, chunks = await analyze_only(
                        client, blobs, documents, SEED_QUEUE, "seed"
                    )
            finally:
                seed.stop()
                sampler.extra.clear()
            measured.rows.append(
                Row(
                    "seed_design",
                    "5 seed design: model inside the activity",
                    chunks / seconds,
                    "chunks/s",
                    baseline="ceiling",
                    detail=f"5 activity slots; {chunks} chunks in {seconds:.1f} s",
                )
            )
            logger.info("seed design: %.1f chunks/s", chunks / seconds)

    if "pipeline" not in options.skip:
        runs = [(1, False)] + ([] if "summaries" in options.skip else [(2, True)])
        for run, summarize in runs:
            with profiles.record(f"pipeline-{run}", process_pids(stack)):
                seconds, count, chunks = await pipeline(
                    client, blobs, documents, folder, run, summarize
                )
            state = "on" if summarize else "off"
            measured.rows.append(
                Row(
                    f"pipeline_{state}",
                    f"6 pipeline, summaries {state}",
                    chunks / seconds,
                    "chunks/s",
                    baseline="ceiling",
                    detail=f"{count / seconds:.2f} documents/s; {count} docs, "
                    f"{chunks} chunks in {seconds:.1f} s",
                    extra={"documents_per_s": count / seconds},
                )
            )
            logger.info(
                "pipeline, summaries %s: %.1f chunks/s", state, chunks / seconds
            )

    if "latency" not in options.skip:
        generated = [d for d in documents if d.name.startswith("bench-")]
        picked = generated[: size.latency_documents]
        measured.rows.append(await latency(client, blobs, picked, folder, ceiling_rate))
    del client


# ---- the whole run ---------------------------------------------------------------


def run(options: Options) -> dict[str, Any]:
    started = time.perf_counter()
    size = SIZES[options.size]
    state = Path(tempfile.mkdtemp(prefix="heysh-bench-", dir="/tmp"))
    settings = bench_settings(state)
    stack = Stack(settings)
    measured = Measured()
    profiles = Profiles(options.profile_dir)
    machine = machine_info()
    try:
        documents = load_corpus(size)
        logger.info("corpus: %d documents; state in %s", len(documents), state)

        logger.info("starting the stack with `heysh up`")
        measured.cold_start_s = start_stack(settings, state / "heysh-up.log")
        time.sleep(5)  # let start-up work settle before the idle snapshot
        idle = memory.snapshot(stack)

        chunks, shorts = measure_ceilings(documents, size, measured)
        measure_serve(stack, chunks, shorts, options, profiles, measured)

        sampler = memory.PeakSampler(stack)
        sampler.start()
        try:
            asyncio.run(
                measure_temporal(
                    stack, documents, size, options, profiles, measured, sampler
                )
            )
        finally:
            peaks = sampler.stop()
        for name, rss in idle.items():
            measured.memory[name] = {"idle": rss, "load": peaks.get(name, rss)}
        for name, rss in peaks.items():
            measured.memory.setdefault(name, {"idle": 0})["load"] = rss
    finally:
        stopped = stack.down()
        logger.info("stopped: %s", ", ".join(stopped))
        if not options.keep_state:
            shutil.rmtree(state, ignore_errors=True)
            shutil.rmtree(settings.ray_temp_dir, ignore_errors=True)

    corpus = {
        "size": options.size,
        "documents": len(documents),
        "generated": size.documents,
        "chunks": len(chunks),
        "short_texts": len(shorts),
        "summary": f"{options.size} corpus: {len(documents)} documents "
        f"({size.documents} generated + samples), {len(chunks)} chunks, "
        f"{len(shorts)} short chunks",
    }
    report = assemble(
        measured.rows,
        machine,
        corpus,
        measured.memory,
        measured.cold_start_s,
        time.perf_counter() - started,
        extra={
            "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "skipped": sorted(options.skip),
            "concurrency": options.concurrency,
            "load_average_at_end": os.getloadavg(),
        },
    )
    return report
