"""The HTTP API on the real stack: uploads run real workflows on the in-process
workers, state comes from Temporal, search from pgvector through Ray Serve.

The stack tests share one app and its lifespan; the schemathesis run gets an app of
its own, because schemathesis drives the app from a thread with its own event loop.
Workflows started here are waited for at the end, so none is left running into the
next module's exact counts.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from temporalio.client import Client

from orchestration.api import ApiKeyMissingError, create_app, with_api_key
from orchestration.config import Settings
from orchestration.errors import DocumentError
from tests.conftest import BAD_INPUT, free_port

HEYSH = str(Path(sys.executable).parent / "heysh")
API_KEY = f"test-{uuid.uuid4().hex}"
KEY_HEADER = {"X-API-Key": API_KEY}
# Unique per run: the same bytes under another name would be a DuplicateDocument.
RUN = uuid.uuid4().hex[:8]
HIVES = (
    "Honeybees survive the winter by forming a tight cluster inside the hive. The "
    "workers shiver their flight muscles to make heat while the queen stays warm at "
    "the centre, and the colony slowly eats the honey it stored over the summer. "
    f"Beekeepers leave enough stores and reduce the entrance against mice. ({RUN})"
)


# --- without the stack ------------------------------------------------------------


def test_the_app_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyMissingError, match="HEYSH_API_KEY"):
        create_app(Settings(state_dir=tmp_path, api_key=None))
    with pytest.raises(ApiKeyMissingError):
        create_app(Settings(state_dir=tmp_path, api_key=SecretStr("")))


def test_the_key_comes_from_the_state_dir_when_unset(tmp_path: Path) -> None:
    assert with_api_key(Settings(state_dir=tmp_path)).api_key is None
    (tmp_path / "api_key").write_text("from-the-file\n")
    found = with_api_key(Settings(state_dir=tmp_path)).api_key
    assert found is not None and found.get_secret_value() == "from-the-file"
    configured = Settings(state_dir=tmp_path, api_key=SecretStr("configured"))
    assert with_api_key(configured) is configured


def test_heysh_api_without_a_key_exits_with_the_reason(tmp_path: Path) -> None:
    env = {**os.environ, "HEYSH_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("HEYSH_API_KEY", None)
    done = subprocess.run(
        [HEYSH, "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "no API key" in done.stdout


# --- on the stack -------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key": SecretStr(API_KEY)})


@pytest.fixture(scope="module")
async def drained(client: Client, workers: None) -> AsyncIterator[None]:
    """Wait, at the end of the module, for every workflow the module started."""
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    yield
    query = (
        "WorkflowType = 'DocumentProcessingWorkflow' AND ExecutionStatus = 'Running'"
        f" AND StartTime >= '{started}'"
    )
    deadline = time.monotonic() + 300
    while running := [w async for w in client.list_workflows(query)]:
        if time.monotonic() > deadline:
            for execution in running:
                await client.get_workflow_handle(execution.id).terminate(
                    "left running by the API tests"
                )
            pytest.fail(f"{len(running)} workflows still running: terminated")
        await asyncio.sleep(1.0)


@pytest.fixture(scope="module")
async def api(
    api_settings: Settings, workers: None, drained: None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://heysh.test",
            headers=KEY_HEADER,
            timeout=60,
        ) as http,
    ):
        yield http


async def upload(
    api: httpx.AsyncClient, name: str, data: bytes, summarize: bool = True
) -> dict[str, Any]:
    response = await api.post(
        "/v1/documents",
        files={"file": (name, data, "application/octet-stream")},
        data={"summarize": str(summarize).lower()},
    )
    assert response.status_code == 202, response.text
    return response.json()


async def until_finished(
    api: httpx.AsyncClient, status_url: str, timeout_s: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await api.get(status_url)
        assert response.status_code == 200, response.text
        state = response.json()
        if state["state"] != "running":
            return state
        if state["progress"] is not None:
            assert (
                0 <= state["progress"]["steps_done"] <= state["progress"]["steps_total"]
            )
        assert time.monotonic() < deadline, f"still running: {state}"
        await asyncio.sleep(0.5)


@pytest.mark.stack
async def test_upload_completes_with_model_versions(api: httpx.AsyncClient, db) -> None:
    submitted = await upload(api, f"api-hives-{RUN}.md", HIVES.encode())
    assert submitted["attached"] is False
    assert submitted["workflow_id"] == f"doc-{submitted['document_id']}"
    assert submitted["status_url"] == f"/v1/documents/{submitted['workflow_id']}"

    state = await until_finished(api, submitted["status_url"])
    assert state["state"] == "completed", state
    result = state["result"]
    assert result["document_id"] == submitted["document_id"]
    assert result["status"] == "completed"
    assert result["chunk_count"] >= 1
    assert result["key_phrases"]
    assert result["summary"]
    assert result["embedding_model"]["name"] == "all-MiniLM-L6-v2"
    assert result["embedding_model"]["version"]
    assert result["summary_model"]["name"] == "SmolLM2-135M-Instruct"
    assert result["summary_model"]["version"]
    stored = await db.fetchval(
        "SELECT count(*) FROM chunks WHERE document_id = $1", result["document_id"]
    )
    assert stored == result["chunk_count"]


@pytest.mark.stack
async def test_the_same_upload_attaches_to_the_same_workflow(
    api: httpx.AsyncClient, client: Client
) -> None:
    first = await upload(api, f"api-hives-{RUN}.md", HIVES.encode())
    again = await upload(api, f"api-hives-{RUN}.md", HIVES.encode())
    assert again["workflow_id"] == first["workflow_id"]
    assert again["attached"] is True
    runs = [
        w async for w in client.list_workflows(f"WorkflowId = '{first['workflow_id']}'")
    ]
    assert len(runs) == 1


@pytest.mark.stack
async def test_search_finds_the_uploaded_document(api: httpx.AsyncClient) -> None:
    submitted = await upload(api, f"api-hives-{RUN}.md", HIVES.encode())
    assert (await until_finished(api, submitted["status_url"]))["state"] == "completed"

    response = await api.get(
        "/v1/search",
        params={"q": "how do honeybees keep warm through the winter", "limit": 3},
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert hits[0]["document_id"] == submitted["document_id"]
    assert hits[0]["document_name"] == f"api-hives-{RUN}.md"
    assert hits[0]["score"] > 0.3
    assert len(hits) <= 3


@pytest.mark.stack
async def test_a_bad_document_fails_with_its_named_error(
    api: httpx.AsyncClient,
) -> None:
    data = (BAD_INPUT / "truncated.pdf").read_bytes()
    submitted = await upload(api, f"api-truncated-{RUN}.pdf", data)
    state = await until_finished(api, submitted["status_url"])
    assert state["state"] == "failed", state
    assert state["error"]["type"] == DocumentError.CORRUPT_PDF
    assert state["error"]["message"]


@pytest.mark.stack
async def test_unknown_and_malformed_ids(api: httpx.AsyncClient) -> None:
    unknown = await api.get(f"/v1/documents/doc-{'0' * 24}")
    assert unknown.status_code == 404
    assert "no document workflow" in unknown.json()["detail"]
    malformed = await api.get("/v1/documents/not-a-workflow-id")
    assert malformed.status_code == 422


@pytest.mark.stack
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_every_v1_route_wants_the_key(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    requests = [
        ("GET", "/v1/search?q=bees"),
        ("GET", f"/v1/documents/doc-{'0' * 24}"),
        ("POST", "/v1/documents"),
    ]
    for method, url in requests:
        request = api.build_request(method, url, headers=headers)
        if "X-API-Key" not in headers:
            del request.headers["X-API-Key"]
        response = await api.send(request)
        assert response.status_code == 401, (method, url, response.text)
        assert "X-API-Key" in response.json()["detail"]
    request = api.build_request("GET", "/healthz")
    del request.headers["X-API-Key"]
    assert (await api.send(request)).status_code == 200


@pytest.mark.stack
async def test_oversize_uploads_get_413_without_being_read(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    limit = api_settings.max_document_bytes

    # Just over the document limit: the body fits the multipart allowance, the file
    # does not.
    response = await api.post(
        "/v1/documents", files={"file": ("big.txt", b"a" * (limit + 1), "text/plain")}
    )
    assert response.status_code == 413
    assert f"{limit:,} bytes" in response.json()["detail"]

    # Far over, declared in Content-Length and streamed: refused before reading.
    sent = 0
    total = 20 * limit

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"b" * 65536
        while sent < total:
            sent += len(chunk)
            yield chunk

    boundary = "heysh-boundary"
    multipart_type = f"multipart/form-data; boundary={boundary}"
    response = await api.post(
        "/v1/documents",
        content=body(),
        headers={"Content-Type": multipart_type, "Content-Length": str(total)},
    )
    assert response.status_code == 413
    assert sent < limit

    # Far over without a Content-Length (chunked): refused once the cap is passed.
    sent = 0

    async def multipart() -> AsyncIterator[bytes]:
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="endless.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        yield head
        async for chunk in body():
            yield chunk

    response = await api.post(
        "/v1/documents", content=multipart(), headers={"Content-Type": multipart_type}
    )
    assert response.status_code == 413
    assert sent < 2 * limit


@pytest.mark.stack
async def test_bad_uploads_get_4xx(api: httpx.AsyncClient) -> None:
    no_file = await api.post("/v1/documents", data={"summarize": "true"})
    assert no_file.status_code == 422
    a_path = await api.post(
        "/v1/documents", files={"file": ("../etc/passwd", b"root", "text/plain")}
    )
    assert a_path.status_code == 400
    assert "not a path" in a_path.json()["detail"]
    not_a_boolean = await api.post(
        "/v1/documents",
        files={"file": ("note.txt", b"text", "text/plain")},
        data={"summarize": "0"},
    )
    assert not_a_boolean.status_code == 422
    not_multipart = await api.post("/v1/documents", json={"file": "text"})
    assert not_multipart.status_code == 422
    broken = await api.post(
        "/v1/documents",
        content=b"--x\r\nnot a part",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= broken.status_code < 500


@pytest.mark.stack
async def test_readyz_names_what_is_down(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    assert {s["service"] for s in ready.json()["services"]} == {
        "Temporal",
        "PostgreSQL",
        "Ray Serve",
    }

    # The same stack, but Serve expected on a port where nothing listens.
    elsewhere = api_settings.model_copy(
        update={"serve_url": f"http://127.0.0.1:{free_port()}"}
    )
    app = create_app(elsewhere)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://heysh.test"
        ) as http,
    ):
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert response.json()["down"] == ["Ray Serve"]


@pytest.mark.stack
async def test_heysh_api_serves_over_http(
    api_settings: Settings, workers: None, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "api_key").write_text("key-from-the-file\n")
    port = free_port()
    env = {
        **os.environ,
        "HEYSH_STATE_DIR": str(state_dir),
        "HEYSH_TEMPORAL_ADDRESS": api_settings.temporal_address,
        "HEYSH_DATABASE_URL": api_settings.database_url,
        "HEYSH_SERVE_URL": api_settings.serve_url,
        "HEYSH_BLOB_URL": api_settings.blob_store_url,
        "HEYSH_API_PORT": str(port),
    }
    env.pop("HEYSH_API_KEY", None)
    server = subprocess.Popen(
        [HEYSH, "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stdout and server.stdout.read()
                assert time.monotonic() < deadline
                await asyncio.sleep(0.25)
            assert (await http.get("/readyz")).status_code == 200
            search = "/v1/search?q=winter+hives"
            assert (await http.get(search)).status_code == 401
            found = await http.get(search, headers={"X-API-Key": "key-from-the-file"})
            assert found.status_code == 200, found.text
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then dies of the signal it caught.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    assert server.stdout is not None
    assert b"Application shutdown complete" in server.stdout.read()


# --- the OpenAPI schema against the real app -----------------------------------------


@pytest.fixture(scope="module")
def api_schema(api_settings: Settings, workers: None, drained: None) -> Iterator[Any]:
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))


@pytest.fixture
def schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schemas rename the test node through `_nodeid`, which
    # pytest 9 no longer has; without one they fail before running any case.
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.stack
@pytest.mark.usefixtures("schemathesis_node_id")
@schema.parametrize()
@hypothesis_settings(
    max_examples=8, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_the_api_keeps_its_schema(case: Any) -> None:
    case.call_and_validate(headers=KEY_HEADER, timeout=60)
