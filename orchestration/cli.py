"""`heysh`: run the local stack, process documents, search them, run a worker."""

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from orchestration.config import Settings, get_settings
from orchestration.model_commands import models_app, reindex
from orchestration.queues import Queue

app = typer.Typer(
    help="Hey.sh: durable document processing on Temporal and Ray Serve.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.command()(reindex)
console = Console()

TIERS = {"ai": Queue.AI, "storage": Queue.STORAGE, "general": Queue.GENERAL}


@app.command()
def up() -> None:
    """Start the embedded stack (Temporal, PostgreSQL, Ray Serve, three workers)."""
    from orchestration.stack import Stack, StackError

    stack = Stack(get_settings())
    try:
        with console.status("starting") as status:
            stack.up(lambda what: status.update(f"starting {what}"))
    except StackError as err:
        console.print(f"[red]stack did not start:[/red] {err}")
        raise typer.Exit(1) from err
    _print_status(stack)
    console.print("Stop everything with [bold]heysh down[/bold] (or make down).")


@app.command()
def down() -> None:
    """Stop every process that `heysh up` started; the data stays for the next `up`."""
    from orchestration.stack import Stack, StackError

    try:
        stopped = Stack(get_settings()).down()
    except StackError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    console.print(
        f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}"
    )


@app.command()
def status() -> None:
    """Show which parts of the embedded stack are running, and where."""
    from orchestration.stack import Stack

    _print_status(Stack(get_settings()))


def _print_status(stack) -> None:
    table = Table("service", "state", "pid", "address")
    for row in stack.status():
        table.add_row(
            row.name,
            "[green]running[/green]" if row.running else "[red]stopped[/red]",
            str(row.pid or "-"),
            row.address,
        )
    console.print(table)


@app.command()
def queues(
    watch: Annotated[
        bool, typer.Option(help="Refresh every two seconds until Ctrl-C.")
    ] = False,
) -> None:
    """Backlog, rates and pollers of the three task queues, and the Serve replicas."""
    from rich.live import Live

    settings = get_settings()
    if not watch:
        console.print(asyncio.run(_queues_view(settings)))
        return
    with Live(console=console, auto_refresh=False) as live:
        while True:
            live.update(asyncio.run(_queues_view(settings)), refresh=True)
            time.sleep(2)


async def _queues_view(settings: Settings) -> Group:
    from orchestration.client import connect
    from orchestration.queue_health import (
        describe_queues,
        serve_deployments,
        symptom_of,
        with_ongoing,
    )
    from orchestration.stack import Stack, StackError
    from ray_serve.inference_client import InferenceClient

    client = await connect(settings)
    serve = Table(
        "deployment",
        "status",
        "replicas",
        "in flight / capacity",
        title="Ray Serve",
    )
    try:
        deployments = serve_deployments(Stack(settings).serve_applications())
        inference = InferenceClient(settings.serve_url, timeout_s=5)
        try:
            cards = await inference.models()
        finally:
            await inference.aclose()
        deployments = with_ongoing(
            deployments,
            {
                name: card.ongoing_requests
                for name, card in cards.items()
                if card.ongoing_requests is not None
            },
        )
    except (StackError, OSError, httpx.HTTPError) as err:
        deployments = []
        serve.caption = f"Serve status unavailable: {err}"
    for deployment in deployments:
        ongoing = deployment.ongoing_requests
        load = f"{'-' if ongoing is None else ongoing} / {deployment.capacity or '-'}"
        serve.add_row(
            f"{deployment.application}/{deployment.deployment}",
            deployment.status,
            f"{deployment.replicas}/{deployment.target_replicas}",
            f"[red]{load}[/red]" if deployment.saturated else load,
        )
    table = Table(
        "queue",
        "tasks",
        "backlog",
        "age",
        "added/s",
        "dispatched/s",
        "pollers",
        "symptom",
        title="Task queues",
    )
    for health in await describe_queues(client):
        symptom = symptom_of(health, deployments)
        table.add_row(
            health.queue,
            health.tasks,
            str(health.backlog),
            f"{health.backlog_age_s:.0f} s",
            f"{health.add_rate:.1f}",
            f"{health.dispatch_rate:.1f}",
            str(health.pollers),
            f"[red]{symptom}[/red]" if symptom else "",
        )
    return Group(table, serve)


@app.command()
def worker(
    tier: Annotated[str, typer.Argument(help="ai, storage or general")],
) -> None:
    """Run one Temporal worker for one task queue, until SIGTERM or Ctrl-C."""
    from orchestration.worker import run_worker

    if tier not in TIERS:
        raise typer.BadParameter(f"choose one of {', '.join(TIERS)}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run_worker(TIERS[tier], get_settings()))


@app.command()
def api() -> None:
    """Serve the HTTP API (clients send the key of STATE_DIR/api_key as X-API-Key)."""
    import uvicorn

    from orchestration.api import ApiKeyMissingError, create_app, with_api_key

    settings = with_api_key(get_settings())
    try:
        application = create_app(settings)
    except ApiKeyMissingError as err:
        console.print(f"[red]the API will not start:[/red] {err}")
        raise typer.Exit(1) from err
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(application, host=settings.api_host, port=settings.api_port)


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to process.")],
    summary: Annotated[bool, typer.Option(help="Generate an LLM summary.")] = True,
) -> None:
    """Process documents through the pipeline and print a table of the results."""
    from orchestration.submission import collect_documents

    try:
        files = collect_documents(paths)
    except FileNotFoundError as err:
        raise typer.BadParameter(str(err)) from err
    if not files:
        raise typer.BadParameter("no files found")
    failed = asyncio.run(_process(get_settings(), files, summary))
    raise typer.Exit(1 if failed else 0)


async def _process(settings: Settings, files: list[Path], summarize: bool) -> int:
    from orchestration.blobs import open_blob_store
    from orchestration.client import connect
    from orchestration.submission import follow, submit
    from orchestration.workflows import STEPS_TOTAL

    client = await connect(settings)
    blobs = open_blob_store(settings.blob_store_url)
    submissions = [await submit(client, blobs, path, summarize) for path in files]
    attached = sum(1 for s in submissions if s.attached)
    if attached:
        console.print(f"attached to {attached} workflow(s) already started earlier")

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        bars = {
            s.workflow_id: progress.add_task(f"{s.name}: starting", total=STEPS_TOTAL)
            for s in submissions
        }

        def update(submission, state, finished) -> None:
            bar = bars[submission.workflow_id]
            if finished:
                progress.update(
                    bar, completed=STEPS_TOTAL, description=f"{submission.name}: done"
                )
            elif state is not None:
                progress.update(
                    bar,
                    completed=state.steps_done,
                    description=f"{submission.name}: {state.stage}",
                )

        outcomes = await follow(submissions, update)

    _print_results(outcomes)
    return sum(1 for outcome in outcomes if outcome.result is None)


def _print_results(outcomes) -> None:
    """One small table per document: it reads at any terminal width."""
    for outcome in outcomes:
        result = outcome.result
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        if result is None:
            table.add_row("status", f"[red]failed: {outcome.error_type}[/red]")
            table.add_row("error", outcome.error_message or "")
            console.print(
                Panel(table, title=outcome.submission.name, title_align="left")
            )
            continue
        summary = result.summary or "-"
        table.add_row("status", "[green]completed[/green]")
        table.add_row("type", result.media_type)
        table.add_row(
            "size",
            f"{result.pages} pages, {result.size_bytes:,} bytes"
            if result.pages
            else f"{result.size_bytes:,} bytes",
        )
        table.add_row("chunks", str(result.chunk_count))
        table.add_row("key phrases", ", ".join(result.key_phrases[:5]))
        table.add_row(
            "summary", summary if len(summary) <= 300 else summary[:297] + "..."
        )
        table.add_row("embedding model", str(result.embedding_model))
        table.add_row("summary model", str(result.summary_model or "-"))
        table.add_row("time", f"{result.duration_s:.1f} s")
        console.print(Panel(table, title=result.name, title_align="left"))

    completed = sum(1 for outcome in outcomes if outcome.result is not None)
    console.print(f"{completed} of {len(outcomes)} documents completed")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    limit: Annotated[int, typer.Option(help="How many chunks to return.")] = 5,
) -> None:
    """Semantic search: embed the query through Serve, find the nearest chunks."""
    from orchestration.search import search_once

    hits = asyncio.run(search_once(get_settings(), query, limit))
    table = Table("score", "document", "chunk", "text", title=f"Search: {query}")
    for hit in hits:
        text = " ".join(hit.text.split())
        table.add_row(
            f"{hit.score:.3f}",
            hit.document_name,
            str(hit.chunk_index),
            text if len(text) <= 200 else text[:197] + "...",
        )
    console.print(table)


@app.command()
def check() -> None:
    """Report whether every configured service answers; exit 1 if one does not."""
    from rich.markup import escape

    probes = asyncio.run(_check(get_settings()))
    table = Table("service", "address", "state")
    for probe in probes:
        state = (
            "[green]reachable[/green]"
            if probe.error is None
            else f"[red]unreachable:[/red] {escape(probe.error)}"
        )
        table.add_row(probe.service, probe.address, state)
    console.print(table)
    raise typer.Exit(1 if any(probe.error for probe in probes) else 0)


async def _check(settings: Settings):
    import httpx

    from orchestration.client import connect
    from storage_tier.backends import probe, probe_stores

    async def temporal_answers() -> None:
        await asyncio.wait_for(connect(settings), settings.backend_timeout_s)

    async def serve_answers() -> None:
        async with httpx.AsyncClient(timeout=settings.backend_timeout_s) as http:
            response = await http.get(f"{settings.serve_url}/v1/models")
            response.raise_for_status()

    return [
        await probe("Temporal", settings.temporal_address, temporal_answers()),
        await probe("Ray Serve", settings.serve_url, serve_answers()),
        *await probe_stores(settings),
    ]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
