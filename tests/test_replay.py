"""Recorded histories replay against today's workflow code.

A change that would break running workflows (a step added, removed or reordered without
versioning) fails here. Record a fresh history with
`HEYSH_RECORD_HISTORY=1 pytest tests/test_pipeline.py -k end_to_end`.
"""

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from orchestration import steps
from orchestration.models import DocumentInput, DocumentResult, RegisteredDocument
from orchestration.workflows import DocumentProcessingWorkflow
from tests.conftest import REPO

HISTORY = REPO / "tests" / "histories" / "document_processing.json"


def recorded() -> WorkflowHistory:
    return WorkflowHistory.from_json("doc-recorded", HISTORY.read_text())


async def test_recorded_document_history_replays() -> None:
    replayer = Replayer(
        workflows=[DocumentProcessingWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(recorded())
    assert result.replay_failure is None


@workflow.defn(name="DocumentProcessingWorkflow", sandboxed=False)
class ExtractsBeforeValidating:
    """The same workflow with one careless change: a step skipped."""

    @workflow.run
    async def run(self, document: DocumentInput) -> DocumentResult:
        registered = await workflow.execute_activity(
            steps.REGISTER_DOCUMENT.name,
            document,
            task_queue=steps.REGISTER_DOCUMENT.queue,
            start_to_close_timeout=steps.REGISTER_DOCUMENT.start_to_close,
            result_type=RegisteredDocument,
        )
        await workflow.execute_activity(
            steps.EXTRACT_TEXT.name,
            registered.ref,
            task_queue=steps.EXTRACT_TEXT.queue,
            start_to_close_timeout=steps.EXTRACT_TEXT.start_to_close,
        )
        raise AssertionError("replay must stop before this point")


async def test_a_non_deterministic_change_is_caught() -> None:
    replayer = Replayer(
        workflows=[ExtractsBeforeValidating], data_converter=pydantic_data_converter
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(recorded())
