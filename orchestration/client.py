"""Temporal client with the pydantic data converter every process must share.

When an OpenTelemetry exporter is configured, the client carries the tracing
interceptor, so workflows it starts and workers built on it emit spans.
"""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from orchestration.config import Settings
from orchestration.telemetry import tracing_interceptors


async def connect(
    settings: Settings, runtime: Runtime | None = None, service: str = "heysh"
) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=tracing_interceptors(service),
    )
