"""The Serve applications of the AI tier, as `serve_config.yaml` names them.

    POST /v1/embeddings         application `embedder`: the Embedder (batched)
    POST /v1/chat/completions   application `summarizer`: the Summarizer (batched)
    GET  /v1/models             application `models`: every model's name, version,
    GET  /healthz               input limits and requests in flight

Each model is an application of its own, with its deployment as the HTTP ingress:
a request goes from Serve's proxy straight to the replica running the model, and
deploying a new version of one model never restarts the other.
"""

import asyncio
import logging
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from ray import serve

from ray_serve.embedder import Embedder
from ray_serve.summarizer import Summarizer
from ray_serve.vllm_summarizer import VLLMSummarizer

logger = logging.getLogger("ray.serve")

CARD_TIMEOUT_S = 10.0

api = FastAPI(title="Hey.sh models", version="1")


class IndexArgs(BaseModel):
    applications: list[str] = Field(
        default_factory=lambda: ["embedder", "summarizer"],
        description="Serve applications whose models /v1/models lists.",
    )


@serve.deployment(
    name="ModelIndex", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0}
)
@serve.ingress(api)
class ModelIndex:
    def __init__(self, applications: list[str]) -> None:
        self.applications = applications

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        cards = await asyncio.gather(*(self._card(app) for app in self.applications))
        data = [
            {**card, "object": "model", "owned_by": "heysh"} for card in cards if card
        ]
        return {"object": "list", "data": data}

    async def _card(self, application: str) -> dict[str, Any] | None:
        """The model card of an application's ingress; None while it is not
        deployed (a model being added, or one taken out)."""
        try:
            handle = serve.get_app_handle(application)
            return await asyncio.wait_for(handle.card.remote(), CARD_TIMEOUT_S)
        except Exception as err:  # an absent or failing app only drops its card
            logger.warning("no model card from application %s: %s", application, err)
            return None


def embedder_app(args: dict[str, Any]) -> serve.Application:
    """`args`: the model (see ray_serve/registry.py) and the Embedder's options."""
    # The deployment decorators add `bind`; their typing does not say so.
    return Embedder.bind(**(args or {}))  # type: ignore[attr-defined]


def summarizer_app(args: dict[str, Any]) -> serve.Application:
    """`args`: the model and the Summarizer's options."""
    return Summarizer.bind(**(args or {}))  # type: ignore[attr-defined]


def vllm_summarizer_app(args: dict[str, Any]) -> serve.Application:
    """`args`: the model and the vLLM engine's options (`engine`); the GPU profile's
    summarizer, with the Summarizer's HTTP contract."""
    return VLLMSummarizer.bind(**(args or {}))  # type: ignore[attr-defined]


def models_app(args: dict[str, Any]) -> serve.Application:
    parsed = IndexArgs.model_validate(args or {})
    return ModelIndex.bind(parsed.applications)  # type: ignore[attr-defined]
