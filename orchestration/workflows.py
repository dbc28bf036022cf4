"""DocumentProcessingWorkflow: one document from its blob to searchable knowledge."""

import asyncio
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from orchestration import steps, telemetry
    from orchestration.models import (
        AnalysisInput,
        AnalysisResult,
        DocumentInput,
        DocumentProgress,
        DocumentResult,
        DocumentStatus,
        ExtractedText,
        ExtractionInput,
        FailureInput,
        GraphResult,
        IndexInput,
        IndexResult,
        Notification,
        RegisteredDocument,
        SummaryInput,
        SummaryResult,
        SyncInput,
        UndeliveredNotification,
        ValidatedDocument,
        ValidationInput,
    )

ResultT = TypeVar("ResultT")

# register, validate, extract, analyze, summarize, index, graph, sync, notify
STEPS_TOTAL = 9


@workflow.defn(name="DocumentProcessingWorkflow")
class DocumentProcessingWorkflow:
    def __init__(self) -> None:
        self._stage = "queued"
        self._done = 0

    @workflow.query
    def progress(self) -> DocumentProgress:
        return DocumentProgress(
            stage=self._stage, steps_done=self._done, steps_total=STEPS_TOTAL
        )

    @workflow.run
    async def run(self, document: DocumentInput) -> DocumentResult:
        started = workflow.now()
        try:
            registered = await self._call(
                steps.REGISTER_DOCUMENT, document, RegisteredDocument
            )
        except ActivityError as err:
            # No row exists to record this on (a bad name or a missing blob).
            self._stage = "failed"
            failure = _failure_of(err)
            telemetry.count_document("failed", failure.type or "")
            raise failure from err
        ref = registered.ref
        workflow.logger.info(
            "document %s registered (%s, %d bytes)",
            ref.document_id,
            ref.name,
            ref.size_bytes,
        )

        try:
            validated = await self._call(
                steps.VALIDATE_DOCUMENT,
                ValidationInput(ref=ref, duplicate_of=registered.duplicate_of),
                ValidatedDocument,
            )
            extracted = await self._call(
                steps.EXTRACT_TEXT,
                ExtractionInput(
                    ref=ref,
                    media_type=validated.media_type,
                    encoding=validated.encoding,
                ),
                ExtractedText,
            )

            # Summary and analysis only share the extracted text, so they run side by
            # side; indexing and the graph wait for the analysis alone.
            summary_task: asyncio.Task[SummaryResult] | None = None
            if document.summarize:
                summary_task = asyncio.create_task(
                    self._call(
                        steps.GENERATE_SUMMARY,
                        SummaryInput(
                            document_id=ref.document_id, text_uri=extracted.text_uri
                        ),
                        SummaryResult,
                    )
                )
            else:
                self._done += 1
            analysis = await self._call(
                steps.ANALYZE_DOCUMENT,
                AnalysisInput(document_id=ref.document_id, text_uri=extracted.text_uri),
                AnalysisResult,
            )
            index_input = IndexInput(
                document_id=ref.document_id, analysis_uri=analysis.analysis_uri
            )
            await asyncio.gather(
                self._call(steps.INDEX_DOCUMENT_VECTORS, index_input, IndexResult),
                self._call(steps.UPDATE_DOCUMENT_GRAPH, index_input, GraphResult),
            )
            summary = await summary_task if summary_task else None

            duration_s = (workflow.now() - started).total_seconds()
            result = await self._call(
                steps.SYNC_DATABASE,
                SyncInput(
                    ref=ref,
                    media_type=validated.media_type,
                    extracted=extracted,
                    analysis=analysis,
                    summary=summary,
                    workflow_id=workflow.info().workflow_id,
                    duration_s=duration_s,
                ),
                DocumentResult,
            )
        except ActivityError as err:
            failure = _failure_of(err)
            workflow.logger.warning(
                "document %s failed: %s: %s",
                ref.document_id,
                failure.type,
                failure.message,
            )
            await self._call(
                steps.RECORD_FAILURE,
                FailureInput(
                    document_id=ref.document_id,
                    error_type=failure.type or "ActivityFailure",
                    message=failure.message,
                ),
                None,
            )
            await self._notify(
                Notification(
                    document_id=ref.document_id,
                    name=ref.name,
                    status=DocumentStatus.FAILED,
                    error_type=failure.type,
                    message=failure.message,
                )
            )
            self._stage = "failed"
            telemetry.count_document("failed", failure.type or "")
            raise failure from err

        await self._notify(
            Notification(
                document_id=ref.document_id,
                name=ref.name,
                status=DocumentStatus.COMPLETED,
            )
        )
        self._stage = "completed"
        telemetry.count_document("completed")
        workflow.logger.info(
            "document %s completed: %d chunks", ref.document_id, result.chunk_count
        )
        return result

    async def _notify(self, notification: Notification) -> None:
        try:
            await self._call(steps.NOTIFY_USER, notification, None)
        except ActivityError as err:
            # The document's outcome is already stored; an undeliverable notification
            # is recorded beside it rather than failing the document.
            reason = str(err.cause or err)
            workflow.logger.warning(
                "notification for %s not delivered: %s",
                notification.document_id,
                reason,
            )
            await self._call(
                steps.RECORD_UNDELIVERED_NOTIFICATION,
                UndeliveredNotification(notification=notification, error=reason),
                None,
            )

    async def _call(
        self, step: steps.Step, arg: Any, result_type: type[ResultT] | None
    ) -> ResultT:
        self._stage = step.name
        result = await steps.execute(step, arg, result_type)
        self._done += 1
        return result


def _failure_of(err: ActivityError) -> ApplicationError:
    """The non-retryable failure the workflow ends with, named after its cause."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    kind = type(cause).__name__ if cause else "ActivityFailure"
    message = str(cause) if cause else str(err)
    return ApplicationError(
        f"{err.activity_type}: {message}", type=kind, non_retryable=True
    )
