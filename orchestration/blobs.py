"""Blob store addressed by URI: document bytes, extracted text and analysis results.

Every tier reads or writes blobs, and only references travel through workflows, so the
store lives here beside the payload models. The embedded default is a local directory
(`file://` URIs); writes are atomic renames, so a retried activity that writes the same
key again leaves one complete file.
"""

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse


class BlobNotFoundError(FileNotFoundError):
    pass


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
