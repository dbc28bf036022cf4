"""The AI path alone: a workflow that runs analyze_document on a given task queue.

Rows 4 and 5 both use it, so the AI worker behind Serve and the seed design's worker
with its own model run the same activity under the same orchestration.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orchestration import steps
    from orchestration.models import AnalysisInput, AnalysisResult

WORKFLOW_QUEUE = "bench-workflows"


@workflow.defn(name="BenchAnalyzeWorkflow")
class AnalyzeOnlyWorkflow:
    @workflow.run
    async def run(self, task_queue: str, analysis: AnalysisInput) -> AnalysisResult:
        step = steps.ANALYZE_DOCUMENT
        return await workflow.execute_activity(
            step.name,
            analysis,
            task_queue=task_queue,
            start_to_close_timeout=step.start_to_close,
            schedule_to_close_timeout=step.schedule_to_close,
            heartbeat_timeout=step.heartbeat,
            retry_policy=step.retry_policy,
            result_type=AnalysisResult,
        )
