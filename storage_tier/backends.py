"""The storage tier's stores, built from settings alone: one factory for every backend.

PostgreSQL always holds the document rows; vectors go to pgvector or Weaviate, the
graph to PostgreSQL or Neo4j, blobs to a local directory or a GCS bucket. Each external
service is reached at start-up, so a worker that cannot use one stops with an error
naming it instead of failing its first activities.
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse, urlunparse

import asyncpg

from orchestration.blobs import BlobStore, GcsBlobStore, open_blob_store, path_of
from orchestration.config import Settings
from storage_tier.database import create_pool
from storage_tier.documents import DocumentRepository
from storage_tier.graph import GraphStore, PgGraphStore
from storage_tier.vectors import PgVectorStore, VectorStore

if TYPE_CHECKING:
    from neo4j import AsyncDriver
    from weaviate import WeaviateAsyncClient

logger = logging.getLogger(__name__)

# Connection failures of PostgreSQL, as opposed to errors of the schema migration.
_POSTGRES_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


class StoreConfigurationError(ValueError):
    """A backend is chosen but the settings it needs are missing."""


class BackendUnreachableError(RuntimeError):
    """A configured store did not answer at start-up; the message names it."""

    def __init__(self, service: str, address: str, cause: object) -> None:
        super().__init__(f"{service} at {address} is unreachable: {cause}")
        self.service = service
        self.address = address


@dataclass(frozen=True)
class Stores:
    documents: DocumentRepository
    vectors: VectorStore
    graph: GraphStore
    blobs: BlobStore


@dataclass(frozen=True)
class Probe:
    """Whether one configured service answered; `error` says why not."""

    service: str
    address: str
    error: str | None = None


@asynccontextmanager
async def open_stores(
    settings: Settings, pool_size: int | None = None
) -> AsyncIterator[Stores]:
    """Open every store the settings choose, create their schemas, and close them on
    exit. Raises StoreConfigurationError or BackendUnreachableError, naming the
    setting or the service."""
    check_configuration(settings)
    async with AsyncExitStack() as stack:
        pool = await _open_postgres(settings, pool_size or settings.database_pool_size)
        stack.push_async_callback(pool.close)
        documents = DocumentRepository(pool)

        vectors: VectorStore
        if settings.vector_backend == "weaviate":
            from storage_tier.weaviate_vectors import WeaviateVectorStore

            client = await connect_weaviate(settings)
            stack.push_async_callback(client.close)
            weaviate_store = WeaviateVectorStore(
                client, settings.weaviate_collection, documents
            )
            await weaviate_store.create_collection()
            vectors = weaviate_store
        else:
            vectors = PgVectorStore(pool)

        graph: GraphStore
        if settings.graph_backend == "neo4j":
            from storage_tier.neo4j_graph import Neo4jGraphStore

            driver = await connect_neo4j(settings)
            stack.push_async_callback(driver.close)
            neo4j_store = Neo4jGraphStore(driver, settings.neo4j_database)
            await neo4j_store.create_constraints()
            graph = neo4j_store
        else:
            graph = PgGraphStore(pool)

        blobs = await _open_blobs(settings)
        logger.info(
            "stores: vectors in %s, graph in %s, blobs at %s",
            settings.vector_backend,
            settings.graph_backend,
            settings.blob_store_url,
        )
        yield Stores(documents, vectors, graph, blobs)


def check_configuration(settings: Settings) -> None:
    if settings.vector_backend == "weaviate" and not settings.weaviate_url:
        raise StoreConfigurationError(
            "HEYSH_VECTOR_BACKEND=weaviate needs HEYSH_WEAVIATE_URL"
        )
    if settings.graph_backend == "neo4j" and not settings.neo4j_url:
        raise StoreConfigurationError("HEYSH_GRAPH_BACKEND=neo4j needs HEYSH_NEO4J_URL")


async def _open_postgres(settings: Settings, size: int) -> asyncpg.Pool:
    try:
        return await create_pool(settings.database_url, size)
    except _POSTGRES_UNREACHABLE as err:
        raise BackendUnreachableError(
            "PostgreSQL", address_of(settings.database_url), err
        ) from err


def weaviate_address(url: str) -> tuple[str, int, bool]:
    """(host, HTTP port, secure) of a Weaviate URL such as http://weaviate:8080."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StoreConfigurationError(
            f"HEYSH_WEAVIATE_URL must be http(s)://host[:port], not {url!r}"
        )
    secure = parsed.scheme == "https"
    return parsed.hostname, parsed.port or (443 if secure else 80), secure


async def connect_weaviate(settings: Settings) -> "WeaviateAsyncClient":
    """A connected async client, or BackendUnreachableError naming Weaviate."""
    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout
    from weaviate.exceptions import WeaviateBaseError

    assert settings.weaviate_url
    host, port, secure = weaviate_address(settings.weaviate_url)
    key = settings.weaviate_api_key
    client = weaviate.use_async_with_custom(
        http_host=host,
        http_port=port,
        http_secure=secure,
        grpc_host=host,
        grpc_port=settings.weaviate_grpc_port,
        grpc_secure=secure,
        auth_credentials=Auth.api_key(key.get_secret_value()) if key else None,
        additional_config=AdditionalConfig(
            timeout=Timeout(init=settings.backend_timeout_s)
        ),
    )
    try:
        await client.connect()
        if not await client.is_ready():
            raise WeaviateBaseError("not ready")
    except (WeaviateBaseError, OSError) as err:
        await client.close()
        raise BackendUnreachableError(
            "Weaviate", address_of(settings.weaviate_url), err
        ) from err
    return client


async def connect_neo4j(settings: Settings) -> "AsyncDriver":
    """A driver that has reached the server, or BackendUnreachableError naming
    Neo4j."""
    from neo4j import AsyncGraphDatabase
    from neo4j.exceptions import DriverError, Neo4jError

    assert settings.neo4j_url
    password = settings.neo4j_password
    auth = (settings.neo4j_user, password.get_secret_value()) if password else None
    address = address_of(settings.neo4j_url)
    try:
        driver = AsyncGraphDatabase.driver(
            settings.neo4j_url,
            auth=auth,
            connection_timeout=settings.backend_timeout_s,
        )
    except (DriverError, ValueError) as err:
        raise BackendUnreachableError("Neo4j", address, err) from err
    try:
        await driver.verify_connectivity()
    except (Neo4jError, DriverError, OSError) as err:
        await driver.close()
        raise BackendUnreachableError("Neo4j", address, err) from err
    return driver


async def _open_blobs(settings: Settings) -> BlobStore:
    url = settings.blob_store_url
    if not url.startswith("gs://"):
        return open_blob_store(url)
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        store = GcsBlobStore.from_url(url)
        await asyncio.to_thread(store.check, settings.backend_timeout_s)
    except (GoogleAPIError, GoogleAuthError, OSError) as err:
        raise BackendUnreachableError("GCS", url, err) from err
    return store


def address_of(url: str) -> str:
    """The URL without its user and password, fit for a log line or an error."""
    parsed = urlparse(url)
    if parsed.hostname is None:
        return url
    netloc = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


async def probe_stores(settings: Settings) -> list[Probe]:
    """Reach every store the settings choose, without writing to any of them."""
    probes = [
        await probe(
            "PostgreSQL",
            address_of(settings.database_url),
            _postgres_answers(settings),
        )
    ]
    if settings.vector_backend == "weaviate":
        probes.append(
            await probe(
                "Weaviate",
                address_of(settings.weaviate_url or "HEYSH_WEAVIATE_URL unset"),
                _weaviate_answers(settings),
            )
        )
    if settings.graph_backend == "neo4j":
        probes.append(
            await probe(
                "Neo4j",
                address_of(settings.neo4j_url or "HEYSH_NEO4J_URL unset"),
                _neo4j_answers(settings),
            )
        )
    url = settings.blob_store_url
    if url.startswith("gs://"):
        probes.append(await probe("GCS", url, _open_blobs(settings)))
    else:
        probes.append(await probe("blobs", url, _local_blobs_writable(url)))
    return probes


async def probe(service: str, address: str, answers: Awaitable[object]) -> Probe:
    """Await one service's check; whatever it raises is the reason it is down."""
    try:
        await answers
    except Exception as err:
        # The table already names the service and its address.
        reason = err.__cause__ if isinstance(err, BackendUnreachableError) else err
        return Probe(service, address, str(reason) or type(reason).__name__)
    return Probe(service, address)


async def _postgres_answers(settings: Settings) -> None:
    connection = await asyncpg.connect(
        settings.database_url, timeout=settings.backend_timeout_s
    )
    await connection.close()


async def _weaviate_answers(settings: Settings) -> None:
    check_configuration(settings)
    client = await connect_weaviate(settings)
    await client.close()


async def _neo4j_answers(settings: Settings) -> None:
    check_configuration(settings)
    driver = await connect_neo4j(settings)
    await driver.close()


async def _local_blobs_writable(url: str) -> None:
    """The directory, or the nearest folder above it that exists, takes writes."""
    path: Path = path_of(url)
    while not path.exists():
        path = path.parent
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{path} is not writable")
