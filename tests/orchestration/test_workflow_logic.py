"""DocumentProcessingWorkflow's logic, with stand-in activities under the real names.

Runs on Temporal's time-skipping test server, so retries and backoff take no time.
"""

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from orchestration.errors import DocumentError
from orchestration.models import (
    AnalysisInput,
    AnalysisResult,
    DocumentInput,
    DocumentRef,
    DocumentResult,
    DocumentStatus,
    ExtractedText,
    ExtractionInput,
    FailureInput,
    GraphResult,
    IndexInput,
    IndexResult,
    MediaType,
    ModelInfo,
    Notification,
    RegisteredDocument,
    SummaryInput,
    SummaryResult,
    SyncInput,
    UndeliveredNotification,
    ValidatedDocument,
    ValidationInput,
)
from orchestration.queues import Queue
from orchestration.worker import build_worker
from orchestration.workflows import DocumentProcessingWorkflow

EMBEDDER = ModelInfo(name="embedder", version="1")
SUMMARIZER = ModelInfo(name="summarizer", version="1")


class StandIns:
    """Activities that record their calls and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.invalid: ApplicationError | None = None
        self.analysis_failures = 0
        self.notify_fails = False
        self.failures: list[FailureInput] = []
        self.notifications: list[Notification] = []
        self.undelivered: list[UndeliveredNotification] = []

    @activity.defn(name="register_document")
    async def register_document(self, document: DocumentInput) -> RegisteredDocument:
        self.calls.append("register_document")
        return RegisteredDocument(
            ref=DocumentRef(
                document_id="d1",
                name=document.name or "doc.txt",
                blob_uri=document.source_uri,
                content_hash="h",
                size_bytes=10,
            )
        )

    @activity.defn(name="validate_document")
    async def validate_document(self, request: ValidationInput) -> ValidatedDocument:
        self.calls.append("validate_document")
        if self.invalid:
            raise self.invalid
        return ValidatedDocument(media_type=MediaType.TEXT, encoding="utf-8")

    @activity.defn(name="extract_text")
    async def extract_text(self, request: ExtractionInput) -> ExtractedText:
        self.calls.append("extract_text")
        return ExtractedText(text_uri="file:///t", chars=100)

    @activity.defn(name="analyze_document")
    async def analyze_document(self, request: AnalysisInput) -> AnalysisResult:
        self.calls.append("analyze_document")
        if self.analysis_failures:
            self.analysis_failures -= 1
            raise RuntimeError("Serve is busy")
        return AnalysisResult(
            analysis_uri="file:///a",
            chunk_count=3,
            key_phrases=["durable execution"],
            embedding_model=EMBEDDER,
        )

    @activity.defn(name="generate_summary")
    async def generate_summary(self, request: SummaryInput) -> SummaryResult:
        self.calls.append("generate_summary")
        return SummaryResult(summary="A short summary.", model=SUMMARIZER)

    @activity.defn(name="index_document_vectors")
    async def index_document_vectors(self, request: IndexInput) -> IndexResult:
        self.calls.append("index_document_vectors")
        return IndexResult(vectors=3)

    @activity.defn(name="update_document_graph")
    async def update_document_graph(self, request: IndexInput) -> GraphResult:
        self.calls.append("update_document_graph")
        return GraphResult(nodes=5, edges=6)

    @activity.defn(name="sync_database")
    async def sync_database(self, sync: SyncInput) -> DocumentResult:
        self.calls.append("sync_database")
        return DocumentResult(
            document_id=sync.ref.document_id,
            name=sync.ref.name,
            status=DocumentStatus.COMPLETED,
            media_type=sync.media_type,
            size_bytes=sync.ref.size_bytes,
            pages=sync.extracted.pages,
            chars=sync.extracted.chars,
            chunk_count=sync.analysis.chunk_count,
            key_phrases=sync.analysis.key_phrases,
            summary=sync.summary.summary if sync.summary else None,
            embedding_model=sync.analysis.embedding_model,
            summary_model=sync.summary.model if sync.summary else None,
            duration_s=sync.duration_s,
        )

    @activity.defn(name="record_document_failure")
    async def record_document_failure(self, failure: FailureInput) -> None:
        self.calls.append("record_document_failure")
        self.failures.append(failure)

    @activity.defn(name="notify_user")
    async def notify_user(self, notification: Notification) -> bool:
        self.calls.append("notify_user")
        if self.notify_fails:
            raise RuntimeError("webhook down")
        self.notifications.append(notification)
        return True

    @activity.defn(name="record_undelivered_notification")
    async def record_undelivered_notification(
        self, undelivered: UndeliveredNotification
    ) -> None:
        self.calls.append("record_undelivered_notification")
        self.undelivered.append(undelivered)

    def by_queue(self) -> dict[Queue, list]:
        return {
            Queue.GENERAL: [self.validate_document, self.notify_user],
            Queue.STORAGE: [
                self.register_document,
                self.extract_text,
                self.index_document_vectors,
                self.update_document_graph,
                self.sync_database,
                self.record_document_failure,
                self.record_undelivered_notification,
            ],
            Queue.AI: [self.analyze_document, self.generate_summary],
        }


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    server = Path(sys.executable).parent / "temporal-test-server"
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(server), data_converter=pydantic_data_converter
    )
    yield environment
    await environment.shutdown()


async def run(client: Client, stand_ins: StandIns, document: DocumentInput):
    async with AsyncExitStack() as stack:
        for queue, activities in stand_ins.by_queue().items():
            await stack.enter_async_context(build_worker(client, queue, activities))
        return await client.execute_workflow(
            DocumentProcessingWorkflow.run,
            document,
            id=f"test-{uuid.uuid4()}",
            task_queue=Queue.GENERAL.value,
        )


async def test_every_step_runs_once_and_the_result_is_complete(
    env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    result = await run(env.client, stand_ins, DocumentInput(source_uri="file:///x.txt"))

    assert result.status is DocumentStatus.COMPLETED
    assert result.chunk_count == 3
    assert result.summary == "A short summary."
    assert result.embedding_model == EMBEDDER
    assert sorted(stand_ins.calls) == sorted(
        [
            "register_document",
            "validate_document",
            "extract_text",
            "analyze_document",
            "generate_summary",
            "index_document_vectors",
            "update_document_graph",
            "sync_database",
            "notify_user",
        ]
    )
    assert stand_ins.notifications[0].status is DocumentStatus.COMPLETED


async def test_bad_input_ends_with_its_named_error_and_is_recorded(
    env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.invalid = ApplicationError(
        "the document is empty", type=DocumentError.EMPTY_DOCUMENT, non_retryable=True
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await run(env.client, stand_ins, DocumentInput(source_uri="file:///x.txt"))

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == DocumentError.EMPTY_DOCUMENT
    assert cause.non_retryable
    assert stand_ins.calls.count("validate_document") == 1
    assert "extract_text" not in stand_ins.calls
    assert stand_ins.failures == [
        FailureInput(
            document_id="d1",
            error_type=DocumentError.EMPTY_DOCUMENT,
            message="the document is empty",
        )
    ]
    assert stand_ins.notifications[0].status is DocumentStatus.FAILED


async def test_transient_failures_are_retried_by_temporal(
    env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.analysis_failures = 2
    result = await run(env.client, stand_ins, DocumentInput(source_uri="file:///x.txt"))
    assert result.status is DocumentStatus.COMPLETED
    assert stand_ins.calls.count("analyze_document") == 3


async def test_summary_can_be_skipped(env: WorkflowEnvironment) -> None:
    stand_ins = StandIns()
    result = await run(
        env.client,
        stand_ins,
        DocumentInput(source_uri="file:///x.txt", summarize=False),
    )
    assert result.summary is None
    assert "generate_summary" not in stand_ins.calls


async def test_an_undeliverable_notification_does_not_fail_the_document(
    env: WorkflowEnvironment,
) -> None:
    stand_ins = StandIns()
    stand_ins.notify_fails = True
    result = await run(env.client, stand_ins, DocumentInput(source_uri="file:///x.txt"))
    assert result.status is DocumentStatus.COMPLETED
    assert stand_ins.calls.count("notify_user") == 5
    [undelivered] = stand_ins.undelivered
    assert undelivered.notification.status is DocumentStatus.COMPLETED
    assert "webhook down" in undelivered.error
