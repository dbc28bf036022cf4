"""Submit documents: store their bytes, start (or attach to) one workflow per document.

Workflow ids derive from each document's name and content hash, so submitting the same
files again after an interruption attaches to the running or finished workflows
instead of starting new ones; a document whose workflow failed is started afresh.
"""

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from orchestration.blobs import BlobStore, document_key
from orchestration.models import (
    DocumentInput,
    DocumentProgress,
    DocumentResult,
    content_hash,
    document_id_for,
    workflow_id_for,
)
from orchestration.queues import WORKFLOW_QUEUE
from orchestration.workflows import DocumentProcessingWorkflow


@dataclass
class Submission:
    path: Path | None  # None for bytes that arrived without a file, e.g. over HTTP
    name: str
    document_id: str
    workflow_id: str
    handle: WorkflowHandle
    attached: bool


@dataclass
class Outcome:
    submission: Submission
    result: DocumentResult | None = None
    error_type: str | None = None
    error_message: str | None = None


def collect_documents(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and every file inside named folders (hidden ones aside)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                child
                for child in sorted(path.rglob("*"))
                if child.is_file()
                and not any(
                    part.startswith(".") for part in child.relative_to(path).parts
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


async def submit(
    client: Client, blobs: BlobStore, path: Path, summarize: bool = True
) -> Submission:
    data = await asyncio.to_thread(path.read_bytes)
    return await submit_data(client, blobs, path.name, data, summarize, path=path)


async def submit_data(
    client: Client,
    blobs: BlobStore,
    name: str,
    data: bytes,
    summarize: bool = True,
    path: Path | None = None,
) -> Submission:
    """Store the bytes under their hash and start (or attach to) their workflow."""
    digest = content_hash(data)
    uri = await blobs.aput(document_key(digest), data)
    document_id = document_id_for(name, digest)
    workflow_id = workflow_id_for(document_id)
    document = DocumentInput(
        source_uri=uri, name=name, content_hash=digest, summarize=summarize
    )
    attached = await _exists(client, workflow_id)
    try:
        handle = await client.start_workflow(
            DocumentProcessingWorkflow.run,
            document,
            id=workflow_id,
            task_queue=WORKFLOW_QUEUE.value,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        # Finished successfully before: its result is the answer.
        handle = client.get_workflow_handle_for(
            DocumentProcessingWorkflow.run, workflow_id
        )
        attached = True
    return Submission(path, name, document_id, workflow_id, handle, attached)


async def _exists(client: Client, workflow_id: str) -> bool:
    """Whether a running or completed workflow already has this id."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return description.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    )


async def progress_of(
    handle: WorkflowHandle, timeout_s: float | None = None
) -> DocumentProgress | None:
    """The workflow's progress query; None when no worker answers it (in time)."""
    try:
        return await handle.query(
            DocumentProcessingWorkflow.progress,
            rpc_timeout=timedelta(seconds=timeout_s) if timeout_s else None,
        )
    except RPCError:
        return None


class Failure(NamedTuple):
    """How a workflow ended without a result: the error's type names the problem."""

    type: str
    message: str


async def result_of(
    handle: WorkflowHandle[Any, DocumentResult], outage_s: float = 300.0
) -> DocumentResult | Failure:
    """Wait for the workflow's result. A Temporal server that restarts meanwhile only
    delays the answer: the wait resumes once the server is back."""
    deadline = time.monotonic() + outage_s
    while True:
        try:
            return await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                return Failure(cause.type or type(cause).__name__, cause.message)
            return Failure(type(cause).__name__, str(cause))
        except RPCError as err:
            if err.status not in _TRANSIENT or time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def outcome_of(submission: Submission, outage_s: float = 300.0) -> Outcome:
    ending = await result_of(submission.handle, outage_s)
    if isinstance(ending, Failure):
        return Outcome(submission, error_type=ending.type, error_message=ending.message)
    return Outcome(submission, result=ending)


_TRANSIENT = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


async def follow(
    submissions: list[Submission],
    on_progress: Callable[[Submission, DocumentProgress | None, bool], None],
    poll_s: float = 0.5,
) -> list[Outcome]:
    """Wait for every submission, reporting each one's progress as it goes."""
    tasks = {asyncio.ensure_future(outcome_of(s)): s for s in submissions}
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=poll_s)
        for task in done:
            on_progress(tasks[task], None, True)
        for task in pending:
            submission = tasks[task]
            on_progress(submission, await progress_of(submission.handle), False)
    return [task.result() for task in tasks]
