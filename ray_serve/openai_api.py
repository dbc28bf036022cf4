"""OpenAI-compatible request and response shapes, shared by the model deployments.

Each model deployment is the HTTP ingress of its own Serve application, so a request
goes from Serve's proxy straight to the replica that runs the model. Responses are
serialised here once, without FastAPI's per-value encoder: an embedding response holds
hundreds of floats per input, and on a small machine encoding them value by value costs
as much as the model.
"""

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import numpy as np
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from orchestration.telemetry import span
from ray_serve.registry import ModelSpec


class EmbeddingRequest(BaseModel):
    model: str = "embedder"
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="base64: each vector as little-endian float32 bytes, as OpenAI's "
        "API offers; smaller and faster to decode than JSON floats.",
    )


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str = "summarizer"
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = 128
    temperature: float = 0.0


def invalid(message: str) -> JSONResponse:
    """The OpenAI error shape, status 400: this request alone was wrong."""
    return JSONResponse(
        status_code=400,
        content={"error": {"message": message, "type": "invalid_request_error"}},
    )


def embeddings_response(
    vectors: list[list[float]],
    model_name: str,
    model_version: str,
    prompt_tokens: int,
    encoding_format: str,
) -> Response:
    if encoding_format == "base64":
        matrix = np.asarray(vectors, dtype="<f4")
        encoded: list[Any] = [
            base64.b64encode(row.tobytes()).decode() for row in matrix
        ]
    else:
        encoded = vectors
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(encoded)
        ],
        "model": model_name,
        "model_version": model_version,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return Response(json.dumps(body), media_type="application/json")


def chat_response(
    text: str,
    model_name: str,
    model_version: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "model_version": model_version,
        "system_fingerprint": model_version,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class PrefixAsRoot:
    """ASGI middleware: a request for an application's route prefix itself (POST
    /v1/embeddings, where the application lives at /v1/embeddings) reaches the app
    with an empty path below the prefix, which Starlette would answer with a
    redirect. OpenAI clients do not follow one, so route it to "/" instead."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "").rstrip("/")
            if root and scope["path"].rstrip("/") == root:
                scope = {**scope, "path": root + "/", "raw_path": (root + "/").encode()}
        await self.app(scope, receive, send)


class OngoingRequests:
    """Requests a replica has taken and not yet answered, for the model card: with
    the deployment's capacity it tells whether Serve is saturated."""

    def __init__(self) -> None:
        self.count = 0

    @asynccontextmanager
    async def serving(
        self, route: str, headers: Mapping[str, str]
    ) -> AsyncIterator[None]:
        """Count the request, in a server span that continues the caller's trace."""
        self.count += 1
        try:
            with span(f"serve {route}", "server", headers):
                yield
        finally:
            self.count -= 1


async def answer_chat(
    spec: ModelSpec,
    ongoing: OngoingRequests,
    request: ChatRequest,
    headers: Mapping[str, str],
    chat: Callable[[list[dict[str, str]], int], Awaitable[Any]],
) -> dict[str, Any] | JSONResponse:
    """The chat route of every chat deployment, whatever its engine: the model id
    checked, the request counted, the engine's outcome (text, token counts, finish
    reason, or an error of this request alone) in OpenAI's shape."""
    if request.model not in (spec.id, spec.name):
        return invalid(f"unknown chat model {request.model!r}")
    messages = [message.model_dump() for message in request.messages]
    async with ongoing.serving("/v1/chat/completions", headers):
        outcome = await chat(messages, request.max_tokens)
    if outcome.error:
        return invalid(outcome.error)
    return chat_response(
        outcome.text,
        spec.name,
        spec.version,
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.finish_reason,
    )
