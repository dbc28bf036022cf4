"""Typed settings for every process, read from `HEYSH_*` environment variables.

The defaults describe the embedded single-machine stack that `heysh up` starts; every
address can point at an external service instead (a Temporal cluster, a managed
PostgreSQL, a Ray cluster, Weaviate, Neo4j, a GCS bucket), so the same code runs in
production.
"""

import hashlib
import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HEYSH_", env_file=".env", extra="ignore"
    )

    state_dir: Path = Field(
        default=Path(".heysh"),
        description="Where the embedded stack keeps its data, logs and process ids.",
    )

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233

    database_url: str = "postgresql://postgres@127.0.0.1:54329/heysh"
    database_pool_size: int = 10

    serve_url: str = Field(
        default="http://127.0.0.1:28000",
        description="Base URL of the Ray Serve application (OpenAI-compatible routes).",
    )
    serve_config: Path = (
        Path(__file__).resolve().parent.parent / "ray_serve" / ("serve_config.yaml")
    )
    serve_backpressure: bool = Field(
        default=True,
        description="Size the AI worker's activity slots and requests in flight from "
        "Serve's capacity, read from the Ray dashboard.",
    )
    serve_capacity_interval_s: float = Field(
        default=5.0, description="How often the AI worker rereads Serve's capacity."
    )
    ray_port: int = 26379
    ray_dashboard_port: int = 28265
    ray_num_cpus: int | None = None
    ray_dashboard_url: str | None = Field(
        default=None,
        description="Ray dashboard (Serve's REST API), which the AI worker reads for "
        "Serve's capacity; defaults to the local stack's dashboard port.",
    )
    ray_auth_token: SecretStr | None = Field(
        default=None,
        description="Ray's auth token; defaults to the file RAY_AUTH_TOKEN_PATH names, "
        "or the local stack's STATE_DIR/ray/auth_token.",
    )

    blob_root: Path | None = Field(
        default=None,
        description="Directory of the local blob store; defaults to STATE_DIR/blobs.",
    )
    blob_url: str | None = Field(
        default=None,
        description="Where blobs live: file:///dir or gs://bucket/prefix; defaults to "
        "the local directory BLOB_ROOT.",
    )

    vector_backend: Literal["pgvector", "weaviate"] = "pgvector"
    weaviate_url: str | None = Field(
        default=None, description="REST address of Weaviate, e.g. http://host:8080."
    )
    weaviate_grpc_port: int = Field(
        default=50051, description="Weaviate's gRPC port, on the host of WEAVIATE_URL."
    )
    weaviate_api_key: SecretStr | None = None
    weaviate_collection: str = "HeyshChunk"

    graph_backend: Literal["postgres", "neo4j"] = "postgres"
    neo4j_url: str | None = Field(
        default=None, description="Bolt address of Neo4j, e.g. neo4j://host:7687."
    )
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = Field(
        default=None, description="Unset for a server without authentication."
    )
    neo4j_database: str | None = Field(
        default=None, description="Defaults to the server's home database."
    )

    backend_timeout_s: float = Field(
        default=10.0,
        description="How long start-up waits for an external store before naming it "
        "unreachable.",
    )

    max_document_bytes: int = 20 * 1024 * 1024
    summary_max_tokens: int = 96
    summary_input_chars: int = 2400
    embedding_timeout_s: float = 120.0
    summary_timeout_s: float = 300.0
    inference_concurrency: int = 8

    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    webhook_allowed_hosts: list[str] = Field(
        default=["127.0.0.1", "localhost"],
        description="Hosts a webhook may target (a JSON list in the environment).",
    )

    worker_metrics_port: int | None = Field(
        default=None,
        description="Serve this worker's Prometheus metrics on this port (unset: off).",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the metrics endpoint."
    )
    worker_metrics_port_base: int = Field(
        default=28091,
        description="`heysh up` serves the general, storage and AI workers' metrics "
        "on this port and the next two.",
    )
    ray_metrics_port: int = Field(
        default=28090, description="Ray's Prometheus export port (Serve's metrics)."
    )

    api_host: str = "127.0.0.1"
    api_port: int = 28080
    api_key: SecretStr | None = Field(
        default=None,
        description="Key that HTTP API clients send as `X-API-Key`; `heysh up` writes "
        "one to STATE_DIR/api_key when unset.",
    )

    @cached_property
    def resolved_state_dir(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @cached_property
    def ray_temp_dir(self) -> Path:
        """Ray's session files and unix sockets. Socket paths are limited to 107 bytes
        and Ray nests them deep, so this stays short under /tmp, one per state dir."""
        digest = hashlib.sha256(str(self.resolved_state_dir).encode()).hexdigest()
        return Path("/tmp") / f"heysh-ray-{digest[:10]}"

    @cached_property
    def dashboard_url(self) -> str:
        return self.ray_dashboard_url or f"http://127.0.0.1:{self.ray_dashboard_port}"

    def ray_token(self) -> str | None:
        """Read at each call: the local stack writes the file when Ray first starts."""
        if self.ray_auth_token:
            return self.ray_auth_token.get_secret_value()
        path = Path(
            os.environ.get("RAY_AUTH_TOKEN_PATH")
            or self.resolved_state_dir / "ray" / "auth_token"
        )
        return path.read_text().strip() if path.exists() else None

    @cached_property
    def blob_directory(self) -> Path:
        root = self.blob_root or self.resolved_state_dir / "blobs"
        return root.expanduser().resolve()

    @cached_property
    def blob_store_url(self) -> str:
        return self.blob_url or self.blob_directory.as_uri()


def get_settings() -> Settings:
    return Settings()
