"""Recorded histories replay against today's workflow code.

A change that would break running workflows (a step added, removed or reordered without
versioning) fails here. Record a fresh history with
`HEYSH_RECORD_HISTORY=1 pytest tests/test_pipeline.py -k end_to_end`.
"""

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestration.workflows import DocumentProcessingWorkflow
from tests.conftest import REPO

HISTORY = REPO / "tests" / "histories" / "document_processing.json"


async def test_recorded_document_history_replays() -> None:
    history = WorkflowHistory.from_json("doc-recorded", HISTORY.read_text())
    replayer = Replayer(
        workflows=[DocumentProcessingWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
