"""Traces on the real stack: one trace from the client that starts a document's
workflow, through the workflow and each activity, to the HTTP requests sent to Serve.

The workers run in this process (in the namespace of their own that the fault tests
use) so their spans land in an in-memory exporter the test reads.
"""

import uuid
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from orchestration.blobs import LocalBlobStore
from orchestration.client import connect
from orchestration.config import Settings
from orchestration.submission import outcome_of, submit
from tests.conftest import FAULTS_NAMESPACE, SAMPLES, in_process_workers


@pytest.mark.stack
async def test_one_trace_runs_from_the_workflow_to_the_serve_requests(
    settings: Settings,
    postgres: str,
    serve: str,
    temporal_env,
    monkeypatch,
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # What an operator sets to turn tracing on; the provider above is kept.
    monkeypatch.setenv("HEYSH_TRACING", "console")

    traced = settings.model_copy(update={"temporal_namespace": FAULTS_NAMESPACE})
    client = await connect(traced, service="heysh-test")
    async with in_process_workers(client, traced):
        blobs = LocalBlobStore(traced.blob_directory)
        run = uuid.uuid4().hex[:8]
        document = tmp_path / f"traced-{run}.md"
        text = (SAMPLES / "incident-report.md").read_text()
        document.write_text(f"{text}\n\nTraced run {run}.\n")
        submission = await submit(client, blobs, document)
        outcome = await outcome_of(submission)
    assert outcome.result is not None, outcome.error_message

    spans = exporter.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    [start] = by_name["StartWorkflow:DocumentProcessingWorkflow"]
    trace_id = start.context.trace_id
    expected = [
        "RunWorkflow:DocumentProcessingWorkflow",
        "StartActivity:analyze_document",
        "RunActivity:analyze_document",
        "RunActivity:generate_summary",
        "RunActivity:index_document_vectors",
        "POST /v1/embeddings",
        "POST /v1/chat/completions",
    ]
    for name in expected:
        assert name in by_name, (name, sorted(by_name))
        assert all(span.context.trace_id == trace_id for span in by_name[name]), name

    def parent_name(span: ReadableSpan) -> str:
        assert span.parent is not None
        [parent] = [s for s in spans if s.context.span_id == span.parent.span_id]
        return parent.name

    # The Serve requests hang under the activity that sent them; the trace context
    # they carry lets Serve's ingress continue the same trace.
    assert {parent_name(s) for s in by_name["POST /v1/embeddings"]} == {
        "RunActivity:analyze_document"
    }
    assert {parent_name(s) for s in by_name["POST /v1/chat/completions"]} == {
        "RunActivity:generate_summary"
    }
    for span in by_name["POST /v1/embeddings"]:
        assert span.kind == trace.SpanKind.CLIENT


def test_tracing_is_off_without_an_exporter(monkeypatch) -> None:
    from orchestration.telemetry import tracing_configured, tracing_interceptors

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HEYSH_TRACING", raising=False)
    assert not tracing_configured()
    assert tracing_interceptors("heysh") == []
    assert tracing_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
