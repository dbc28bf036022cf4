"""The Serve application: OpenAI-compatible routes in front of the model deployments.

    GET  /v1/models             the deployed models, with versions and input limits
    POST /v1/embeddings         Embedder (batched)
    POST /v1/chat/completions   Summarizer (batched)
    GET  /healthz

`build_app` is the application builder named by `serve_config.yaml`, so the whole app
deploys with `serve deploy ray_serve/serve_config.yaml`.
"""

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import Headers

from orchestration.telemetry import install_tracer_provider, span, tracing_configured
from ray_serve.embedder import Embedder
from ray_serve.summarizer import Summarizer

api = FastAPI(title="Hey.sh inference", version="1")


class EmbeddingRequest(BaseModel):
    model: str = "embedder"
    input: str | list[str]
    encoding_format: str = "float"


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str = "summarizer"
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = 128
    temperature: float = 0.0


def _invalid(message: str) -> JSONResponse:
    return JSONResponse(
        status_code=400,
        content={"error": {"message": message, "type": "invalid_request_error"}},
    )


@serve.deployment(name="OpenAIIngress", max_ongoing_requests=256)
@serve.ingress(api)
class OpenAIIngress:
    def __init__(
        self, embedder: DeploymentHandle, summarizer: DeploymentHandle
    ) -> None:
        self.embedder = embedder
        self.summarizer = summarizer
        # Requests this ingress has sent to each model and not yet had answered:
        # with each deployment's capacity, it tells whether Serve is saturated.
        self.ongoing = {"embedder": 0, "summarizer": 0}
        if tracing_configured():
            install_tracer_provider("heysh-serve")

    @asynccontextmanager
    async def _request(
        self, model: str, route: str, headers: Headers
    ) -> AsyncIterator[None]:
        self.ongoing[model] += 1
        try:
            with span(f"serve {route}", "server", headers):
                yield
        finally:
            self.ongoing[model] -= 1

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        cards = [
            await self.embedder.card.remote(),
            await self.summarizer.card.remote(),
        ]
        for card in cards:
            card.update(
                object="model",
                owned_by="heysh",
                ongoing_requests=self.ongoing.get(card["id"], 0),
            )
        return {"object": "list", "data": cards}

    @api.post("/v1/embeddings", response_model=None)
    async def embeddings(
        self, request: EmbeddingRequest, http: Request
    ) -> dict[str, Any] | JSONResponse:
        if request.model != "embedder":
            return _invalid(f"unknown embedding model {request.model!r}")
        texts = [request.input] if isinstance(request.input, str) else request.input
        async with self._request("embedder", "/v1/embeddings", http.headers):
            outcome = await self.embedder.embed.remote(texts)
        if outcome.error:
            return _invalid(outcome.error)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(outcome.vectors)
            ],
            "model": outcome.model_name,
            "model_version": outcome.model_version,
            "usage": {
                "prompt_tokens": outcome.prompt_tokens,
                "total_tokens": outcome.prompt_tokens,
            },
        }

    @api.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        self, request: ChatRequest, http: Request
    ) -> dict[str, Any] | JSONResponse:
        if request.model != "summarizer":
            return _invalid(f"unknown chat model {request.model!r}")
        messages = [message.model_dump() for message in request.messages]
        async with self._request("summarizer", "/v1/chat/completions", http.headers):
            outcome = await self.summarizer.chat.remote(messages, request.max_tokens)
        if outcome.error:
            return _invalid(outcome.error)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": outcome.model_name,
            "model_version": outcome.model_version,
            "system_fingerprint": outcome.model_version,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": outcome.text},
                    "finish_reason": outcome.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens,
                "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
            },
        }


class AppArgs(BaseModel):
    embedder: dict[str, Any] = Field(default_factory=dict)
    summarizer: dict[str, Any] = Field(default_factory=dict)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Application builder: `args` holds each model's constructor arguments."""
    parsed = AppArgs.model_validate(args or {})
    # The deployment decorators add `bind`; their typing does not say so.
    embedder = Embedder.bind(**parsed.embedder)  # type: ignore[attr-defined]
    summarizer = Summarizer.bind(**parsed.summarizer)  # type: ignore[attr-defined]
    return OpenAIIngress.bind(embedder, summarizer)  # type: ignore[attr-defined]
