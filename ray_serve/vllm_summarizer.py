"""Summarizer deployment for GPUs: the chat model on vLLM's async engine, serving
`POST /v1/chat/completions` with the same HTTP contract as the CPU `Summarizer`.

vLLM schedules every request in flight into each forward pass (continuous batching),
so the deployment hands each request to the engine the moment it arrives: there is no
`@serve.batch` here. `VLLMEngine` is the engine with no Serve in it; `VLLMSummarizer`
is the ingress of the `summarizer` application in `serve_config.gpu.yaml`. vllm is
imported when an engine is built, so this module imports where vllm is not installed
(it lives in its own environment, see the Makefile).
"""

import logging
import os
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from ray_serve.openai_api import (
    ChatRequest,
    OngoingRequests,
    PrefixAsRoot,
    answer_chat,
)
from ray_serve.registry import ModelSpec, resolve_source
from ray_serve.summarizer import MAX_NEW_TOKENS, ChatOutcome, check_chat

logger = logging.getLogger("ray.serve")

DEFAULT_MODEL = ModelSpec(
    id="summarizer",
    name="SmolLM2-135M-Instruct",
    source="hub:HuggingFaceTB/SmolLM2-135M-Instruct",
    version="hf-bf16",
)


class EngineOptions(BaseModel):
    """How the engine runs the model; the defaults are for one NVIDIA T4."""

    model_config = ConfigDict(extra="forbid")

    # A T4 (compute capability 7.5) has no bfloat16 arithmetic. vLLM's CPU engine
    # takes float32 or bfloat16 instead.
    dtype: str = "half"
    max_model_len: int = Field(default=2048, gt=MAX_NEW_TOKENS)
    # The fraction of the GPU's memory this engine may take, weights and KV cache
    # included. The Embedder shares the T4, so leave it room; a 135M-parameter model
    # needs well under a gigabyte for its weights.
    gpu_memory_utilization: float = Field(default=0.4, gt=0, le=1)
    # CUDA graphs speed up decoding of a model this small several-fold; eager mode
    # starts faster and is what the CPU engine runs.
    enforce_eager: bool = False
    # vLLM's FlashAttention and FlashInfer kernels need compute capability 8.0; on a
    # T4 (7.5) the Triton attention backend is the one that runs. None lets vLLM pick,
    # which is what the CPU engine needs (its own CPU backend).
    attention_backend: str | None = "TRITON_ATTN"
    # Only the CPU engine reads this: the KV cache size, instead of a share of RAM.
    kv_cache_memory_bytes: int | None = None
    # The most sequences decoded together in one step.
    max_num_seqs: int = 64
    # As in the CPU Summarizer: a model this small loops on its own phrases without it.
    repetition_penalty: float = 1.15


class VLLMEngine:
    """The chat model on vLLM's async engine, with no Serve in it.

    Requests are generated greedily (temperature 0) and batched continuously by the
    engine; `chat` never raises for a bad request, it returns an outcome with an error.
    """

    def __init__(self, spec: ModelSpec, options: EngineOptions | None = None) -> None:
        model_path = resolve_source(spec.source)
        if not spec.source.startswith("hub:"):
            # Local weights need nothing from the hub: keep vLLM from asking it.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from vllm import SamplingParams, TokensPrompt
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.async_llm import AsyncLLM

        self.spec = spec
        self.options = options or EngineOptions()
        self.max_input_tokens = self.options.max_model_len - MAX_NEW_TOKENS
        self._sampling_params = SamplingParams
        self._tokens_prompt = TokensPrompt
        self._client_error = VLLMClientError
        args = AsyncEngineArgs(
            model=model_path,
            served_model_name=[spec.name],
            dtype=self.options.dtype,
            max_model_len=self.options.max_model_len,
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            enforce_eager=self.options.enforce_eager,
            attention_backend=self.options.attention_backend,
            kv_cache_memory_bytes=self.options.kv_cache_memory_bytes,
            max_num_seqs=self.options.max_num_seqs,
            # Serve's metrics and the model card report the load; the engine's own
            # periodic stats lines would only repeat it in the replica's log.
            disable_log_stats=True,
        )
        self.engine = AsyncLLM.from_engine_args(args)
        self.tokenizer = self.engine.get_tokenizer()

    async def chat(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> ChatOutcome:
        problem = check_chat(messages, max_tokens)
        if problem:
            return ChatOutcome(error=problem)
        prompt_ids = self.prompt_ids(messages)
        if prompt_ids is None:
            return ChatOutcome(
                error=f"the messages do not fit in {self.max_input_tokens} tokens"
            )

        params = self._sampling_params(
            temperature=0.0,
            max_tokens=max_tokens,
            repetition_penalty=self.options.repetition_penalty,
        )
        final = None
        try:
            # Pre-tokenized prompts go through the engine's renderer, as vLLM asks.
            (engine_input,) = await self.engine.renderer.render_cmpl_async(
                [self._tokens_prompt(prompt_token_ids=prompt_ids)]
            )
            async for output in self.engine.generate(
                engine_input, params, uuid.uuid4().hex
            ):
                final = output
        except self._client_error as err:
            return ChatOutcome(error=str(err))
        if final is None or not final.outputs:
            raise RuntimeError("the engine finished a request without output")

        completion = final.outputs[0]
        return ChatOutcome(
            text=completion.text.strip(),
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(completion.token_ids),
            finish_reason="length" if completion.finish_reason == "length" else "stop",
        )

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int] | None:
        """The prompt's tokens through the tokenizer's chat template, the last message
        shortened when the whole is too long (the CPU Summarizer truncates too); None
        when even that cannot make it fit."""
        ids = self._render(messages)
        for _ in range(3):
            overflow = len(ids) - self.max_input_tokens
            if overflow <= 0:
                return ids
            last = messages[-1]
            content = self.tokenizer.encode(last["content"], add_special_tokens=False)
            # Decoding and encoding again may merge tokens differently; a few spare
            # tokens keep that from needing another round.
            keep = len(content) - overflow - 4
            if keep <= 0:
                return None
            shortened = self.tokenizer.decode(content[:keep])
            messages = [*messages[:-1], {**last, "content": shortened}]
            ids = self._render(messages)
        return None

    def _render(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=True,
        )
        # The template writes the special tokens itself.
        return list(self.tokenizer.encode(str(text), add_special_tokens=False))

    async def check_health(self) -> None:
        """Raises when the engine's background process has died."""
        await self.engine.check_health()

    def shutdown(self) -> None:
        self.engine.shutdown()


api = FastAPI(title="Hey.sh chat completions on vLLM", version="1")
api.add_middleware(PrefixAsRoot)


@serve.deployment(
    name="VLLMSummarizer",
    # The engine queues and batches what it is given; Serve only has to let the
    # requests through to it.
    max_ongoing_requests=64,
    ray_actor_options={"num_cpus": 1},
    health_check_period_s=10,
)
@serve.ingress(api)
class VLLMSummarizer:
    def __init__(
        self, model: dict[str, Any] | None = None, engine: dict[str, Any] | None = None
    ) -> None:
        self.spec = ModelSpec.model_validate(model) if model else DEFAULT_MODEL
        self.engine = VLLMEngine(self.spec, EngineOptions.model_validate(engine or {}))
        self.ongoing = OngoingRequests()
        logger.info(
            "vLLM summarizer %s@%s ready (dtype %s, %d context tokens)",
            self.spec.name,
            self.spec.version,
            self.engine.options.dtype,
            self.engine.options.max_model_len,
        )

    async def check_health(self) -> None:
        # Serve restarts the replica when this raises: a dead engine cannot recover.
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()

    def card(self) -> dict[str, Any]:
        return {
            "id": self.spec.id,
            "name": self.spec.name,
            "version": self.spec.version,
            "kind": "chat",
            "max_input_tokens": self.engine.max_input_tokens,
            "ongoing_requests": self.ongoing.count,
        }

    # Serve hands the route its path below the application's prefix: "/".
    @api.post("/", response_model=None)
    async def chat_completions(
        self, request: ChatRequest, http: Request
    ) -> dict[str, Any] | JSONResponse:
        return await answer_chat(
            self.spec, self.ongoing, request, http.headers, self.engine.chat
        )
