"""Payloads that cross a process boundary: workflow inputs, activity inputs and results.

They carry references (document ids, blob URIs, content hashes), never document bytes
or embedding arrays, so workflow histories stay small.
"""

import hashlib
from enum import StrEnum

from pydantic import BaseModel, Field


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_id_for(name: str, digest: str) -> str:
    """A document is its name and its content: the same file processed again is the
    same document; the same content under another name is a duplicate of it."""
    return hashlib.sha256(f"{name}\0{digest}".encode()).hexdigest()[:24]


def workflow_id_for(document_id: str) -> str:
    return f"doc-{document_id}"


class MediaType(StrEnum):
    PDF = "application/pdf"
    HTML = "text/html"
    MARKDOWN = "text/markdown"
    TEXT = "text/plain"


class ModelInfo(BaseModel):
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class DocumentInput(BaseModel):
    """Input of DocumentProcessingWorkflow; what `temporal workflow start` passes."""

    source_uri: str = Field(description="URI of the document's bytes, e.g. file:///…")
    name: str | None = Field(
        default=None, description="Defaults to the URI's basename."
    )
    content_hash: str | None = Field(
        default=None, description="sha256 of the bytes; computed when absent."
    )
    summarize: bool = True


class DocumentRef(BaseModel):
    document_id: str
    name: str
    blob_uri: str
    content_hash: str
    size_bytes: int


class RegisteredDocument(BaseModel):
    ref: DocumentRef
    duplicate_of: str | None = None


class ValidationInput(BaseModel):
    ref: DocumentRef
    duplicate_of: str | None = None


class ValidatedDocument(BaseModel):
    media_type: MediaType
    encoding: str | None = None


class ExtractionInput(BaseModel):
    ref: DocumentRef
    media_type: MediaType
    encoding: str | None = None


class ExtractedText(BaseModel):
    text_uri: str
    chars: int
    pages: int | None = None
    title: str | None = None


class AnalysisInput(BaseModel):
    document_id: str
    text_uri: str


class KeyPhrase(BaseModel):
    phrase: str
    score: float
    chunk_indexes: list[int] = Field(default_factory=list)


class Chunk(BaseModel):
    index: int
    text: str
    start: int
    end: int
    embedding: list[float]


class Analysis(BaseModel):
    """What analyze_document stores in the blob store for the storage tier (claim
    check): too large for a workflow history."""

    document_id: str
    model: ModelInfo
    dimensions: int
    chunks: list[Chunk]
    key_phrases: list[KeyPhrase]


class AnalysisResult(BaseModel):
    analysis_uri: str
    chunk_count: int
    key_phrases: list[str]
    embedding_model: ModelInfo


class SummaryInput(BaseModel):
    document_id: str
    text_uri: str
    max_tokens: int | None = Field(
        default=None, description="Defaults to the AI worker's configured length."
    )


class SummaryResult(BaseModel):
    summary: str
    model: ModelInfo


class IndexInput(BaseModel):
    document_id: str
    analysis_uri: str


class IndexResult(BaseModel):
    vectors: int
    removed: int = 0


class GraphResult(BaseModel):
    nodes: int
    edges: int


class SyncInput(BaseModel):
    ref: DocumentRef
    media_type: MediaType
    extracted: ExtractedText
    analysis: AnalysisResult
    summary: SummaryResult | None
    workflow_id: str
    duration_s: float


class FailureInput(BaseModel):
    document_id: str
    error_type: str
    message: str


class DocumentStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Notification(BaseModel):
    document_id: str
    name: str
    status: DocumentStatus
    error_type: str | None = None
    message: str | None = None


class UndeliveredNotification(BaseModel):
    notification: Notification
    error: str


class DocumentResult(BaseModel):
    document_id: str
    name: str
    status: DocumentStatus
    media_type: MediaType
    size_bytes: int
    pages: int | None
    chars: int
    chunk_count: int
    key_phrases: list[str]
    summary: str | None
    embedding_model: ModelInfo
    summary_model: ModelInfo | None
    duration_s: float


class DocumentProgress(BaseModel):
    stage: str
    steps_done: int
    steps_total: int


class ReindexInput(BaseModel):
    """Re-embed the completed documents whose vectors another model version made.

    `after_document_id`, `reindexed`, `failed` and `model_version` carry a run's
    progress over continue-as-new; a new reindex leaves them at their defaults."""

    model: str = Field(default="embedder", description="The model id to reindex for.")
    batch_size: int = Field(default=16, ge=1, le=256)
    batches_per_run: int = Field(
        default=25,
        ge=1,
        description="Batches before continuing as new (sooner if Temporal suggests).",
    )
    after_document_id: str = ""
    reindexed: int = 0
    failed: int = 0
    model_version: ModelInfo | None = None


class StaleDocumentsInput(BaseModel):
    model_version: str
    after_document_id: str
    limit: int


class StaleDocument(BaseModel):
    document_id: str
    text_uri: str


class ReindexedDocument(BaseModel):
    document_id: str
    analysis: AnalysisResult


class ReindexProgress(BaseModel):
    model: ModelInfo | None
    reindexed: int
    failed: int
    after_document_id: str


class ReindexResult(BaseModel):
    model: ModelInfo
    reindexed: int
    failed: int = Field(
        description="Documents that could not be embedded again: they keep their "
        "earlier vectors, which search leaves out while another version is current."
    )


def reindex_workflow_id(model: str) -> str:
    """One reindex per model at a time."""
    return f"reindex-{model}"
