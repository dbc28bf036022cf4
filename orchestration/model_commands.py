"""`heysh models ...`: the models the AI tier serves, and their rollouts.

The serve config is the registry; these commands read it, deploy a changed one
through Serve's REST API, show replica progress until every model answers with its new
version, and roll back to the configuration that ran before.
"""

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from orchestration.config import get_settings

models_app = typer.Typer(
    help="The models Ray Serve runs: list, status, deploy, rollback.",
    no_args_is_help=True,
)
console = Console()


def _admin():
    from orchestration.stack import Stack

    return Stack(get_settings()).serve_admin()


def _print_states(states) -> None:
    for state in states:
        console.print(f"  {state.line}")


@models_app.command("list")
def list_models(
    config: Annotated[
        Path | None,
        typer.Argument(help="A serve config; the repository's by default."),
    ] = None,
) -> None:
    """Every model a serve config names, with its source and deployment options."""
    from ray_serve.registry import model_of

    path = config or get_settings().serve_config
    data = yaml.safe_load(path.read_text())
    table = Table(
        "application", "model", "version", "source", "deployment", title=str(path)
    )
    for entry in data.get("applications", []):
        spec = model_of(entry)
        if spec is None:
            continue
        options = [
            _deployment_summary(deployment)
            for deployment in entry.get("deployments") or []
        ]
        table.add_row(
            entry["name"],
            f"{spec.id}: {spec.name}",
            spec.version,
            spec.source,
            "\n".join(options),
        )
    console.print(table)


def _deployment_summary(deployment: dict[str, Any]) -> str:
    parts = [deployment.get("name", "?")]
    if "autoscaling_config" in deployment:
        scaling = deployment["autoscaling_config"]
        parts.append(
            f"replicas {scaling.get('min_replicas', '?')}-"
            f"{scaling.get('max_replicas', '?')}"
        )
    else:
        parts.append(f"replicas {deployment.get('num_replicas', 1)}")
    tunables = deployment.get("user_config") or {}
    if "max_batch_size" in tunables:
        parts.append(
            f"batch {tunables['max_batch_size']}"
            f" / {tunables.get('batch_wait_timeout_s', '-')} s"
        )
    resources = deployment.get("ray_actor_options") or {}
    for key in ("num_cpus", "num_gpus", "accelerator_type"):
        if key in resources:
            parts.append(f"{key} {resources[key]}")
    return ", ".join(str(part) for part in parts)


@models_app.command()
def status() -> None:
    """What the cluster runs: each model's application, replicas and live version."""
    admin = _admin()
    try:
        states = admin.states(admin.live_config())
    except Exception as err:  # no cluster, no token: say so and stop
        console.print(f"[red]Serve status unavailable:[/red] {err}")
        raise typer.Exit(1) from err
    if not states:
        console.print("Serve runs no application; start it with heysh up")
        raise typer.Exit(1)
    table = Table("application", "status", "live version", "deployments")
    for state in states:
        table.add_row(
            state.application,
            state.status,
            state.live_version or "-",
            "\n".join(f"{n}: {s}" for n, s in state.deployments.items()),
        )
    console.print(table)
    kept = admin.previous_configs()
    console.print(
        f"{kept} earlier config(s) kept for rollback"
        if kept
        else "no earlier config kept: nothing to roll back to"
    )


@models_app.command()
def deploy(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="The serve config to deploy; without it, --set changes what runs."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="APPLICATION.KEY=VALUE, repeatable: embedder.version=0.2.0, "
            "embedder.max_batch_size=32, embedder.num_replicas=2.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the rollout.")
    ] = 600.0,
) -> None:
    """Deploy a changed config and follow its rollout until every model is up.

    Tunables (batch size and wait) change in place; a new model version starts new
    replicas and retires the old ones gradually, with no request dropped."""
    from ray_serve.rollout import RolloutError, changed_copy

    admin = _admin()
    live = admin.live_config()
    if config is not None:
        base = yaml.safe_load(config.read_text())
        if live and "http_options" in live:
            # A running cluster keeps its HTTP address.
            base["http_options"] = live["http_options"]
    elif live is not None:
        base = live
    else:
        raise typer.BadParameter("Serve runs nothing yet: give a config file")
    try:
        target = changed_copy(base, set_ or [])
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    console.print("deploying; progress:")
    try:
        states = admin.deploy(target, timeout, _print_states)
    except RolloutError as err:
        console.print(f"[red]{err}[/red]")
        console.print("roll back with: heysh models rollback")
        raise typer.Exit(1) from err
    versions = ", ".join(
        f"{s.application} {s.live_version}" for s in states if s.live_version
    )
    console.print(f"[green]rolled out[/green]: {versions}")


@models_app.command()
def rollback(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the rollout.")
    ] = 600.0,
) -> None:
    """Deploy the config that ran before the last deploy."""
    from ray_serve.rollout import RolloutError

    admin = _admin()
    console.print("rolling back; progress:")
    try:
        states = admin.rollback(timeout, _print_states)
    except RolloutError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    versions = ", ".join(
        f"{s.application} {s.live_version}" for s in states if s.live_version
    )
    console.print(f"[green]rolled back[/green]: {versions}")


def reindex(
    model: Annotated[
        str, typer.Option(help="The model whose stored output to remake.")
    ] = "embedder",
    batch_size: Annotated[
        int, typer.Option(help="Documents embedded at once.", min=1, max=256)
    ] = 16,
    wait: Annotated[
        bool, typer.Option(help="Follow the workflow until it is done.")
    ] = True,
) -> None:
    """Embed again every document whose vectors an earlier model version made.

    Starts ReindexWorkflow (or joins the one running for the model) on the general
    queue; search keeps to the current version throughout."""
    result = asyncio.run(_reindex(model, batch_size, wait))
    if result is not None and result.failed:
        raise typer.Exit(1)


async def _reindex(model: str, batch_size: int, wait: bool):
    from temporalio.client import WorkflowFailureError
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError

    from orchestration.client import connect
    from orchestration.models import ReindexInput, reindex_workflow_id
    from orchestration.queues import WORKFLOW_QUEUE
    from orchestration.reindex_workflow import ReindexWorkflow

    settings = get_settings()
    client = await connect(settings)
    handle = await client.start_workflow(
        ReindexWorkflow.run,
        ReindexInput(model=model, batch_size=batch_size),
        id=reindex_workflow_id(model),
        task_queue=WORKFLOW_QUEUE.value,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    console.print(f"reindex workflow {handle.id} (run {handle.result_run_id})")
    if not wait:
        return None
    task = asyncio.ensure_future(handle.result())
    with console.status("reindexing") as status:
        while not task.done():
            try:
                progress = await handle.query(ReindexWorkflow.progress)
                status.update(
                    f"reindexing for {progress.model or model}: "
                    f"{progress.reindexed} done, {progress.failed} failed"
                )
            except RPCError:  # between the runs of a continue-as-new: ask again
                pass
            await asyncio.wait([task], timeout=1.0)
    try:
        result = task.result()
    except WorkflowFailureError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(err)
        console.print(f"[red]reindex failed:[/red] {message}")
        raise typer.Exit(1) from err
    console.print(
        f"reindexed {result.reindexed} document(s) with {result.model}"
        + (f"; [red]{result.failed} failed[/red]" if result.failed else "")
    )
    return result
