"""ReindexWorkflow: embed again, with the model version Serve runs now, every completed
document whose vectors an earlier version made.

It runs after an embedding model rollout (`heysh reindex --model embedder`). Documents
go in batches of a bounded size, each one through the same activities a new document
takes (analyze on the AI queue, vectors and graph on the storage queue), and then its
row is switched to the new version and its old vectors dropped. Search compares only
vectors of the version that embedded the query, so it never mixes two versions. A
large corpus continues as new every few batches, carrying its cursor and counts.
"""

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from orchestration import steps
    from orchestration.errors import DocumentError
    from orchestration.models import (
        AnalysisInput,
        AnalysisResult,
        GraphResult,
        IndexInput,
        IndexResult,
        ModelInfo,
        ReindexedDocument,
        ReindexInput,
        ReindexProgress,
        ReindexResult,
        StaleDocument,
        StaleDocumentsInput,
    )

# Models whose output is stored as vectors; summaries are not re-made.
REINDEXABLE = {"embedder"}


@workflow.defn(name="ReindexWorkflow")
class ReindexWorkflow:
    def __init__(self) -> None:
        self._progress = ReindexProgress(
            model=None, reindexed=0, failed=0, after_document_id=""
        )

    @workflow.query
    def progress(self) -> ReindexProgress:
        return self._progress

    @workflow.run
    async def run(self, request: ReindexInput) -> ReindexResult:
        if request.model not in REINDEXABLE:
            raise ApplicationError(
                f"only {sorted(REINDEXABLE)} can be reindexed, not {request.model!r}",
                type=DocumentError.INVALID_INPUT,
                non_retryable=True,
            )
        model = request.model_version
        if model is None:
            model = await steps.execute(steps.DESCRIBE_MODEL, request.model, ModelInfo)
        progress = self._progress = ReindexProgress(
            model=model,
            reindexed=request.reindexed,
            failed=request.failed,
            after_document_id=request.after_document_id,
        )
        for _ in range(request.batches_per_run):
            stale = await steps.execute(
                steps.FIND_STALE_DOCUMENTS,
                StaleDocumentsInput(
                    model_version=model.version,
                    after_document_id=progress.after_document_id,
                    limit=request.batch_size,
                ),
                list[StaleDocument],
            )
            if stale:
                done = await asyncio.gather(*(self._reindex(doc) for doc in stale))
                progress.reindexed += sum(done)
                progress.failed += len(done) - sum(done)
                progress.after_document_id = stale[-1].document_id
            if len(stale) < request.batch_size:
                # None, or a short batch: nothing is left past the cursor.
                return ReindexResult(
                    model=model, reindexed=progress.reindexed, failed=progress.failed
                )
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(
            request.model_copy(
                update={
                    "after_document_id": progress.after_document_id,
                    "reindexed": progress.reindexed,
                    "failed": progress.failed,
                    "model_version": model,
                }
            )
        )

    async def _reindex(self, document: StaleDocument) -> bool:
        """One document on the new version; False if it could not be embedded (it
        keeps its old vectors and the reindex goes on)."""
        try:
            analysis = await steps.execute(
                steps.ANALYZE_DOCUMENT,
                AnalysisInput(
                    document_id=document.document_id, text_uri=document.text_uri
                ),
                AnalysisResult,
            )
            index = IndexInput(
                document_id=document.document_id, analysis_uri=analysis.analysis_uri
            )
            await steps.execute(steps.INDEX_DOCUMENT_VECTORS, index, IndexResult)
            await steps.execute(steps.UPDATE_DOCUMENT_GRAPH, index, GraphResult)
            await steps.execute(
                steps.RECORD_REINDEXED,
                ReindexedDocument(document_id=document.document_id, analysis=analysis),
                int,
            )
        except ActivityError as err:
            workflow.logger.warning(
                "document %s not reindexed: %s", document.document_id, err.cause
            )
            return False
        return True
