"""HTTP client of the Serve application's OpenAI-compatible routes.

Any OpenAI-compatible server can stand in. Our Serve application adds `model_version`
to each response; other servers' responses fall back to `system_fingerprint`.
"""

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from orchestration.models import ModelInfo
from orchestration.telemetry import span, trace_headers
from ray_serve.backpressure import AdjustableLimit


class InferenceRejectedError(Exception):
    """The server refused the request itself (4xx): retrying it cannot help."""


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    model: ModelInfo
    prompt_tokens: int


@dataclass(frozen=True)
class ModelCard:
    id: str
    name: str
    version: str
    kind: str
    max_input_tokens: int | None
    dimensions: int | None
    ongoing_requests: int | None = None


class InferenceClient:
    def __init__(
        self,
        base_url: str,
        timeout_s: float = 120.0,
        concurrency: int = 8,
        embedding_model: str = "embedder",
        chat_model: str = "summarizer",
    ) -> None:
        self.embedding_model = embedding_model
        self.chat_model = chat_model
        # One pooled client per process: connection reuse matters more than anything
        # else at this layer. The limits bound requests in flight to each model; the
        # AI worker resizes them to its share of Serve's capacity.
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self.limits = {
            "embed": AdjustableLimit(concurrency),
            "chat": AdjustableLimit(concurrency),
        }

    async def embed(self, texts: list[str]) -> Embeddings:
        # base64 float32 vectors, as OpenAI's API offers: a fraction of the bytes of
        # JSON numbers, and far less CPU to encode and decode on a small machine.
        body = await self._post(
            "embed",
            "/v1/embeddings",
            {
                "model": self.embedding_model,
                "input": texts,
                "encoding_format": "base64",
            },
        )
        data = sorted(body["data"], key=lambda item: item["index"])
        return Embeddings(
            vectors=[_vector(item["embedding"]) for item in data],
            model=_model_of(body),
            prompt_tokens=int(body.get("usage", {}).get("prompt_tokens", 0)),
        )

    async def chat(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> tuple[str, ModelInfo]:
        body = await self._post(
            "chat",
            "/v1/chat/completions",
            {
                "model": self.chat_model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": 0,
            },
        )
        return body["choices"][0]["message"]["content"].strip(), _model_of(body)

    async def models(self) -> dict[str, ModelCard]:
        response = await self._http.get("/v1/models")
        response.raise_for_status()
        cards = {}
        for item in response.json()["data"]:
            cards[item["id"]] = ModelCard(
                id=item["id"],
                name=item.get("name", item["id"]),
                version=item.get("version", "unversioned"),
                kind=item.get("kind", "unknown"),
                max_input_tokens=item.get("max_input_tokens"),
                dimensions=item.get("dimensions"),
                ongoing_requests=item.get("ongoing_requests"),
            )
        return cards

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(
        self, kind: str, path: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        async with self.limits[kind]:
            with span(f"POST {path}", "client"):
                response = await self._http.post(
                    path, json=payload, headers=trace_headers()
                )
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise InferenceRejectedError(
                f"{path} rejected the request ({response.status_code}): "
                f"{response.text[:500]}"
            )
        response.raise_for_status()
        return response.json()


def _model_of(body: dict[str, Any]) -> ModelInfo:
    version = (
        body.get("model_version") or body.get("system_fingerprint") or "unversioned"
    )
    return ModelInfo(name=body.get("model", "unknown"), version=version)


def _vector(value: str | list[float]) -> list[float]:
    """A vector from either encoding: servers that ignore `encoding_format` send
    JSON numbers."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4").tolist()
    return value
