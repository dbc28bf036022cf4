"""What a worker reports about itself: Prometheus metrics and OpenTelemetry traces.

Metrics come from the Temporal SDK's own runtime (task slots, schedule-to-start and
execution latency) and from the pipeline's counters, which go through the same meter so
one `/metrics` endpoint per worker carries both. Traces are on only when an OTLP
exporter is configured with the standard `OTEL_EXPORTER_OTLP_*` variables (or
`HEYSH_TRACING=console`): spans run from the workflow through each activity to the
HTTP request the AI tier sends to Serve, which continues the trace.
"""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from temporalio import activity, workflow
from temporalio.client import Interceptor
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from orchestration.config import Settings

logger = logging.getLogger(__name__)

# The pipeline's own metric names; the Grafana dashboard queries them by these names.
DOCUMENTS_PROCESSED = "heysh_documents_processed"
CHUNKS_EMBEDDED = "heysh_chunks_embedded"
SUMMARIES_GENERATED = "heysh_summaries_generated"
AI_SLOT_LIMIT = "heysh_ai_activity_slot_limit"
SERVE_CAPACITY = "heysh_serve_capacity"


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics, when a metrics port is set."""
    if settings.worker_metrics_port is None:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    logger.info("metrics on http://%s/metrics", address)
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
        )
    )


def tracing_configured(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("HEYSH_TRACING") == "console"
    )


def tracing_interceptors(service: str) -> list[Interceptor]:
    """The Temporal tracing interceptor with an exporting tracer provider, or nothing
    when no exporter is configured (or the `tracing` extra is not installed)."""
    if not tracing_configured():
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        install_tracer_provider(service)
    except ImportError:
        logger.warning("tracing is configured but the `tracing` extra is missing")
        return []
    return [TracingInterceptor()]


def install_tracer_provider(service: str) -> None:
    """Set the process's tracer provider once, exporting over OTLP/HTTP or to the
    console."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if os.environ.get("HEYSH_TRACING") == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


@contextmanager
def span(
    name: str, kind: str, headers: Mapping[str, str] | None = None
) -> Iterator[None]:
    """A client or server span named `name`; a server span continues the trace
    context in `headers`. A no-op without an installed tracer provider."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        yield
        return
    context = propagate.extract(dict(headers)) if headers is not None else None
    tracer = trace.get_tracer("heysh")
    with tracer.start_as_current_span(
        name, context=context, kind=getattr(trace.SpanKind, kind.upper())
    ):
        yield


def trace_headers() -> dict[str, str]:
    """W3C trace context of the current span, for an outgoing HTTP request."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def count_document(status: str, error_type: str = "") -> None:
    """One document finished, from the workflow (not counted again on replay)."""
    _count(
        workflow.metric_meter(),
        DOCUMENTS_PROCESSED,
        1,
        "Documents finished",
        {
            "status": status,
            "error_type": error_type,
        },
    )


def count_model_output(name: str, amount: int, model: str, version: str) -> None:
    """Chunks embedded or summaries written by one model version, from an activity."""
    _count(
        activity.metric_meter(),
        name,
        amount,
        "Model outputs",
        {
            "model": model,
            "model_version": version,
        },
    )


def _count(
    meter: MetricMeter,
    name: str,
    amount: int,
    description: str,
    labels: dict[str, str],
) -> None:
    counter = meter.create_counter(name, description)
    counter.add(amount, labels)
