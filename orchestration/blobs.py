"""Blob store addressed by URI: document bytes, extracted text and analysis results.

Every tier reads or writes blobs, and only references travel through workflows, so the
store lives here beside the payload models. The embedded default is a local directory
(`file://` URIs); writes are atomic renames, so a retried activity that writes the same
key again leaves one complete file. In production a GCS bucket (`gs://` URIs) holds
them; an upload there becomes visible whole or not at all, which gives the same
guarantee. `open_blob_store` picks one from a URL.
"""

import asyncio
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from google.cloud import storage


class BlobNotFoundError(FileNotFoundError):
    pass


class BlobStore(Protocol):
    """Write by key, read by URI; the URI a write returns is what workflows carry."""

    def uri_for(self, key: str) -> str: ...

    def put(self, key: str, data: bytes) -> str: ...

    def read(self, uri: str) -> bytes: ...

    def size(self, uri: str) -> int: ...

    async def aput(self, key: str, data: bytes) -> str: ...

    async def aread(self, uri: str) -> bytes: ...


def open_blob_store(url: str) -> BlobStore:
    """The store a URL names: `file:///dir` (or a bare path) or `gs://bucket/prefix`."""
    if url.startswith("gs://"):
        return GcsBlobStore.from_url(url)
    return LocalBlobStore(path_of(url))


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def uri_for(self, key: str) -> str:
        return self._path_for(key).as_uri()

    def put(self, key: str, data: bytes) -> str:
        path = self._path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def read(self, uri: str) -> bytes:
        path = path_of(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise BlobNotFoundError(f"no blob at {uri}") from err

    def size(self, uri: str) -> int:
        try:
            return path_of(uri).stat().st_size
        except FileNotFoundError as err:
            raise BlobNotFoundError(f"no blob at {uri}") from err

    async def aput(self, key: str, data: bytes) -> str:
        return await asyncio.to_thread(self.put, key, data)

    async def aread(self, uri: str) -> bytes:
        return await asyncio.to_thread(self.read, uri)

    def _path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path


class GcsBlobStore:
    """Objects in one GCS bucket, under a prefix; reads take any `gs://` URI."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: "storage.Client | None" = None,
        timeout_s: float = 60.0,
    ) -> None:
        if client is None:
            from google.cloud import storage

            # Object reads and writes need no project; without one the client does
            # not insist on finding it in the environment.
            client = storage.Client(project=None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.timeout_s = timeout_s

    @classmethod
    def from_url(
        cls, url: str, client: "storage.Client | None" = None
    ) -> "GcsBlobStore":
        bucket, prefix = gcs_location(url, object_required=False)
        return cls(bucket, prefix, client)

    def uri_for(self, key: str) -> str:
        return f"gs://{self.bucket}/{self._object_name(key)}"

    def put(self, key: str, data: bytes) -> str:
        name = self._object_name(key)
        self.client.bucket(self.bucket).blob(name).upload_from_string(
            data, content_type="application/octet-stream", timeout=self.timeout_s
        )
        return f"gs://{self.bucket}/{name}"

    def read(self, uri: str) -> bytes:
        from google.api_core.exceptions import NotFound

        bucket, name = gcs_location(uri)
        blob = self.client.bucket(bucket).blob(name)
        try:
            return blob.download_as_bytes(timeout=self.timeout_s)
        except NotFound as err:
            raise BlobNotFoundError(f"no blob at {uri}") from err

    def size(self, uri: str) -> int:
        bucket, name = gcs_location(uri)
        blob = self.client.bucket(bucket).get_blob(name, timeout=self.timeout_s)
        if blob is None or blob.size is None:
            raise BlobNotFoundError(f"no blob at {uri}")
        return int(blob.size)

    async def aput(self, key: str, data: bytes) -> str:
        return await asyncio.to_thread(self.put, key, data)

    async def aread(self, uri: str) -> bytes:
        return await asyncio.to_thread(self.read, uri)

    def check(self, timeout_s: float = 10.0) -> None:
        """Raise unless the bucket answers to these credentials.

        One listing call under the prefix, not retried: a start-up check should fail
        fast rather than back off for minutes.
        """
        blobs = self.client.list_blobs(
            self.bucket,
            prefix=self.prefix or None,
            max_results=1,
            timeout=timeout_s,
            retry=None,
        )
        for _ in blobs:
            break

    def _object_name(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in PurePosixPath(key).parts:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key


def gcs_location(uri: str, object_required: bool = True) -> tuple[str, str]:
    """(bucket, object name) of a `gs://bucket/name` URI.

    Split by hand rather than by urlparse: object names may hold `#` or `?`.
    """
    if not uri.startswith("gs://"):
        raise ValueError(f"unsupported blob URI scheme: {uri}")
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket or (object_required and not name):
        raise ValueError(f"incomplete GCS URI: {uri}")
    return bucket, name


def path_of(uri: str) -> Path:
    """The local path of a `file://` URI (or a bare path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    raise ValueError(f"unsupported blob URI scheme {parsed.scheme!r}: {uri}")


def document_key(digest: str) -> str:
    """Documents are stored by content, so storing the same bytes twice is a no-op."""
    return f"documents/{digest[:2]}/{digest}"


def text_key(document_id: str) -> str:
    return f"text/{document_id}.txt"


def analysis_key(document_id: str, model_version: str) -> str:
    return f"analysis/{document_id}/{model_version}.json"
