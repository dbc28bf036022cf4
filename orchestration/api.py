"""HTTP API for product engineers: upload documents, follow their workflows, search.

A thin layer over what the CLI does: uploads go through the same submission code (blob
store, then one workflow per document by deterministic id), state comes from the
workflow itself, search from the vector store. One Temporal client, one database pool
and one inference client serve the app's whole lifetime.
"""

import asyncio
import hmac
import logging
import unicodedata
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

import asyncpg
import httpx
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
    status,
)
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, BeforeValidator, Field, SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from orchestration.client import connect
from orchestration.config import Settings
from orchestration.models import DocumentProgress, DocumentResult
from orchestration.search import search_chunks
from orchestration.submission import Failure, progress_of, result_of, submit_data
from orchestration.workflows import DocumentProcessingWorkflow
from ray_serve.inference_client import InferenceClient, InferenceRejectedError
from storage_tier.backends import Stores, address_of, open_stores, probe

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
API_KEY_FILE = "api_key"
# Ids that `workflow_id_for` gives: "doc-" and 24 hex digits of the document id.
WORKFLOW_ID_PATTERN = r"^doc-[0-9a-f]{24}$"
# Room in an upload's body for the multipart boundaries, part headers and the small
# form fields beside the document itself.
MULTIPART_ALLOWANCE = 64 * 1024
# No other route takes a body worth the name.
SMALL_BODY_BYTES = 64 * 1024
MAX_NAME_CHARS = 255
# A progress query needs a worker to answer it; a state request should not hang for
# as long as none does.
PROGRESS_QUERY_S = 3.0


class ApiKeyMissingError(RuntimeError):
    """The API would run without authentication: it refuses to."""


class ErrorBody(BaseModel):
    detail: str = Field(description="What was wrong, in one sentence.")


class Submitted(BaseModel):
    workflow_id: str
    document_id: str
    name: str
    attached: bool = Field(
        description="True when these bytes under this name were submitted before: "
        "the answer is that earlier workflow, running or finished."
    )
    status_url: str = Field(description="Where to follow the document (GET).")


class DocumentFailure(BaseModel):
    type: str = Field(
        description="The non-retryable error's type, e.g. EmptyDocument, CorruptPdf."
    )
    message: str


class RunningDocument(BaseModel):
    state: Literal["running"] = "running"
    workflow_id: str
    document_id: str
    progress: DocumentProgress | None = Field(
        description="Unknown (null) while no worker answers the workflow's query."
    )


class CompletedDocument(BaseModel):
    state: Literal["completed"] = "completed"
    workflow_id: str
    document_id: str
    result: DocumentResult


class FailedDocument(BaseModel):
    state: Literal["failed"] = "failed"
    workflow_id: str
    document_id: str
    error: DocumentFailure


DocumentState = Annotated[
    RunningDocument | CompletedDocument | FailedDocument,
    Field(discriminator="state"),
]


class SearchHit(BaseModel):
    document_id: str
    document_name: str
    chunk_index: int
    text: str
    score: float = Field(description="Cosine similarity to the query, highest first.")


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ServiceState(BaseModel):
    service: str
    address: str
    error: str | None = Field(description="Why it did not answer; null when it did.")


class Readiness(BaseModel):
    ready: bool
    down: list[str] = Field(description="Names of the services that did not answer.")
    services: list[ServiceState]


@dataclass(frozen=True)
class Services:
    """Connections the app holds for its whole lifetime."""

    temporal: Client
    stores: Stores
    inference: InferenceClient


def with_api_key(settings: Settings) -> Settings:
    """The settings, with the key from STATE_DIR/api_key when none is configured."""
    if settings.api_key is not None:
        return settings
    path = settings.resolved_state_dir / API_KEY_FILE
    if not path.is_file():
        return settings
    key = path.read_text().strip()
    return settings.model_copy(update={"api_key": SecretStr(key)}) if key else settings


def create_app(settings: Settings) -> FastAPI:
    """The API for these settings; raises ApiKeyMissingError without an API key."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if not key:
        raise ApiKeyMissingError(
            "no API key: set HEYSH_API_KEY or write one to "
            f"{settings.resolved_state_dir / API_KEY_FILE}"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            try:
                temporal = await connect(settings)
            except RuntimeError as err:
                raise RuntimeError(
                    f"Temporal at {settings.temporal_address} is unreachable: {err}"
                ) from err
            stores = await stack.enter_async_context(open_stores(settings))
            inference = InferenceClient(
                settings.serve_url, timeout_s=settings.embedding_timeout_s
            )
            stack.push_async_callback(inference.aclose)
            app.state.services = Services(temporal, stores, inference)
            logger.info("API ready on Temporal %s", settings.temporal_address)
            yield
            # The Temporal client has no close(): dropping the last reference ends
            # its connection, which must happen before the event loop closes.
            del app.state.services

    app = FastAPI(
        title="Hey.sh",
        version="1",
        description="Upload documents, follow their processing, search what they say.",
        lifespan=lifespan,
        max_body_size=SMALL_BODY_BYTES,
    )
    _install_error_handlers(app, settings)
    app.include_router(_v1(settings, key))
    app.include_router(_probes(settings))
    return app


def _services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(_services)]


def _v1(settings: Settings, key: str) -> APIRouter:
    expected = key.encode()
    api_key = APIKeyHeader(
        name=API_KEY_HEADER,
        auto_error=False,
        description="The key `heysh up` writes to STATE_DIR/api_key, or HEYSH_API_KEY.",
    )

    async def require_api_key(
        given: Annotated[str | None, Security(api_key)],
    ) -> None:
        # Constant time, so response timing does not reveal how much of a guess
        # matched.
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"missing or wrong {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": "APIKey"},
            )

    router = APIRouter(
        prefix="/v1",
        dependencies=[Depends(require_api_key)],
        responses={
            401: {"model": ErrorBody, "description": "No or a wrong API key."},
            503: {"model": ErrorBody, "description": "A service did not answer."},
        },
    )
    upload_limit = settings.max_document_bytes + MULTIPART_ALLOWANCE

    @router.post(
        "/documents",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            400: {"model": ErrorBody, "description": "Not an acceptable upload."},
            413: {"model": ErrorBody, "description": "Larger than the limit."},
        },
        max_body_size=upload_limit,
    )
    async def submit_document(
        request: Request,
        response: Response,
        services: ServicesDep,
        file: Annotated[UploadFile, File(description="The document's bytes.")],
        summarize: Annotated[
            bool,
            BeforeValidator(_json_boolean),
            Form(description="Generate an LLM summary."),
        ] = True,
    ) -> Submitted:
        """Store the document and start its workflow, or attach to the one that the
        same name and bytes started before."""
        name = _document_name(file.filename)
        limit = settings.max_document_bytes
        # The body limit bounds what was read; this bounds the document itself.
        if file.size is not None and file.size > limit:
            raise _too_large(limit)
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise _too_large(limit)

        submission = await submit_data(
            services.temporal, services.stores.blobs, name, data, summarize
        )
        status_url = request.app.url_path_for(
            "document_state", workflow_id=submission.workflow_id
        )
        response.headers["Location"] = status_url
        logger.info(
            "document %s submitted as %s (%s)",
            submission.document_id,
            submission.workflow_id,
            "attached" if submission.attached else "started",
        )
        return Submitted(
            workflow_id=submission.workflow_id,
            document_id=submission.document_id,
            name=name,
            attached=submission.attached,
            status_url=status_url,
        )

    @router.get(
        "/documents/{workflow_id}",
        name="document_state",
        responses={404: {"model": ErrorBody, "description": "No such document."}},
    )
    async def document_state(
        workflow_id: Annotated[
            str,
            PathParam(
                pattern=WORKFLOW_ID_PATTERN,
                description="The workflow id that the upload answered with.",
            ),
        ],
        services: ServicesDep,
    ) -> DocumentState:
        """Running with its progress, completed with its result, or failed with the
        error that ended it."""
        handle = services.temporal.get_workflow_handle_for(
            DocumentProcessingWorkflow.run, workflow_id
        )
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _unknown(workflow_id) from err
            raise
        if description.workflow_type != "DocumentProcessingWorkflow":
            raise _unknown(workflow_id)

        document_id = workflow_id.removeprefix("doc-")
        if description.status == WorkflowExecutionStatus.RUNNING:
            progress = await progress_of(handle, PROGRESS_QUERY_S)
            return RunningDocument(
                workflow_id=workflow_id, document_id=document_id, progress=progress
            )
        # Finished: the result (or failure) is there to read; no outage to wait out.
        ending = await result_of(handle, outage_s=0)
        if isinstance(ending, Failure):
            return FailedDocument(
                workflow_id=workflow_id,
                document_id=document_id,
                error=DocumentFailure(type=ending.type, message=ending.message),
            )
        return CompletedDocument(
            workflow_id=workflow_id, document_id=document_id, result=ending
        )

    @router.get(
        "/search",
        responses={400: {"model": ErrorBody, "description": "An unusable query."}},
    )
    async def search(
        services: ServicesDep,
        q: Annotated[
            str, Query(min_length=1, max_length=1000, description="What to look for.")
        ],
        limit: Annotated[
            int, Query(ge=1, le=50, description="How many chunks to return.")
        ] = 5,
    ) -> SearchResults:
        """Nearest chunks of completed documents to the query, by meaning."""
        try:
            hits = await search_chunks(
                services.inference, services.stores.vectors, q, limit
            )
        except InferenceRejectedError as err:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from err
        except (asyncpg.PostgresError, OSError) as err:
            raise _unavailable("PostgreSQL", err) from err
        return SearchResults(
            query=q,
            hits=[
                SearchHit(
                    document_id=hit.document_id,
                    document_name=hit.document_name,
                    chunk_index=hit.chunk_index,
                    text=hit.text,
                    score=hit.score,
                )
                for hit in hits
            ],
        )

    return router


def _probes(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> Health:
        """The process is up; says nothing about the services behind it."""
        return Health()

    @router.get(
        "/readyz",
        responses={503: {"model": Readiness, "description": "A service is down."}},
    )
    async def readyz(services: ServicesDep, response: Response) -> Readiness:
        """Whether Temporal, PostgreSQL and Ray Serve answer now, each within the
        backend timeout."""
        timeout_s = settings.backend_timeout_s

        async def temporal_serves() -> None:
            serving = await services.temporal.service_client.check_health(
                timeout=timedelta(seconds=timeout_s)
            )
            if not serving:
                raise RuntimeError("not serving")

        async def postgres_answers() -> None:
            await services.stores.documents.pool.fetchval("SELECT 1", timeout=timeout_s)

        async def serve_answers() -> None:
            await asyncio.wait_for(services.inference.models(), timeout_s)

        probes = await asyncio.gather(
            probe("Temporal", settings.temporal_address, temporal_serves()),
            probe("PostgreSQL", address_of(settings.database_url), postgres_answers()),
            probe("Ray Serve", settings.serve_url, serve_answers()),
        )
        down = [p.service for p in probes if p.error is not None]
        readiness = Readiness(
            ready=not down,
            down=down,
            services=[
                ServiceState(service=p.service, address=p.address, error=p.error)
                for p in probes
            ],
        )
        if down:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return readiness

    return router


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    """Outages of a service answer 503 naming it, not 500."""

    async def temporal_down(request: Request, err: Exception) -> JSONResponse:
        return _error_response(
            _unavailable(f"Temporal at {settings.temporal_address}", err)
        )

    async def serve_down(request: Request, err: Exception) -> JSONResponse:
        return _error_response(_unavailable(f"Ray Serve at {settings.serve_url}", err))

    app.add_exception_handler(RPCError, temporal_down)
    app.add_exception_handler(httpx.HTTPError, serve_down)


def _document_name(filename: str | None) -> str:
    """The upload's file name, refused here (400) when the workflow would refuse it.

    A name is part of the document's identity, so it is kept as given rather than
    cleaned up; a path or a control character in it is the client's mistake.
    """
    name = filename or ""
    if not name.strip():
        raise _bad_request("the upload has no file name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise _bad_request(f"a file name, not a path: {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise _bad_request(f"file name longer than {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise _bad_request(f"control characters in the file name: {name!r}")
    return name


def _json_boolean(value: object) -> object:
    """Form fields arrive as text: only the spellings of a JSON boolean count, not
    the "0", "yes" or "off" that pydantic would also take for one."""
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("must be true or false")
    return value


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"documents are limited to {limit:,} bytes"
    )


def _unknown(workflow_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"no document workflow {workflow_id}"
    )


def _bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def _unavailable(service: str, err: Any) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{service} did not answer: {err or type(err).__name__}",
    )


def _error_response(err: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": err.detail}, status_code=err.status_code)
