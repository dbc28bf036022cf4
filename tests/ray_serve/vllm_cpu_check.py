"""Deploy `VLLMSummarizer` with Serve on CPU and send it concurrent chat requests.

Runs with the vLLM environment's Python (`.venv-vllm`, built by the Makefile) on a
private local Ray in its own temporary folder, and prints one JSON object with every
response, the model card and the throughput seen; `test_vllm_cpu.py` judges it:

    .venv-vllm/bin/python tests/ray_serve/vllm_cpu_check.py --model-dir DIR
"""

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("vllm_cpu_check")

MAX_TOKENS = 48
TOPICS = [
    "Temporal workflows retry failed activities with backoff.",
    "Ray Serve batches model inference across concurrent requests.",
    "pgvector stores chunk embeddings next to the documents they came from.",
    "A claim check keeps large payloads out of workflow histories.",
    "Continuous batching adds new requests to a running decode loop.",
    "Each document's summary records the model name and version.",
]

# vLLM's CPU engine: its own attention backend, bfloat16 (or float32), no CUDA
# graphs, and a KV cache of fixed size rather than a share of the machine's memory.
CPU_ENGINE = {
    "dtype": "bfloat16",
    "attention_backend": None,
    "enforce_eager": True,
    "max_model_len": 2048,
    "kv_cache_memory_bytes": 1 << 30,
    "max_num_seqs": 16,
}


def free_port() -> int:
    # Ray refuses ports in its worker range; the kernel's ephemeral range is above it.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > 20000:
            return port


def chat_body(
    topic: str, model: str = "summarizer", max_tokens: int = MAX_TOKENS
) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "You summarize text in one sentence."},
            {"role": "user", "content": f"Summarize: {topic}"},
        ],
        "max_tokens": max_tokens,
    }


async def send_all(base_url: str) -> dict[str, Any]:
    import httpx

    route = f"{base_url}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=300) as http:
        # One request alone: the engine's speed at batch 1.
        started = time.monotonic()
        alone = await http.post(route, json=chat_body(TOPICS[0]))
        alone_s = time.monotonic() - started

        # The good requests together (one on the trailing-slash path), with the bad
        # ones among them.
        good = [(route, chat_body(topic)) for topic in TOPICS]
        good[-1] = (f"{route}/", good[-1][1])
        bad = [
            (route, chat_body(TOPICS[0], max_tokens=0)),
            (route, chat_body(TOPICS[0], model="no-such-model")),
        ]
        started = time.monotonic()
        responses = await asyncio.gather(
            *(http.post(url, json=body) for url, body in [*good, *bad])
        )
        together_s = time.monotonic() - started

    def seen(response: Any) -> dict[str, Any]:
        json_body = response.headers.get("content-type", "").startswith(
            "application/json"
        )
        body = response.json() if json_body else response.text
        return {"status": response.status_code, "body": body}

    return {
        "alone": seen(alone),
        "alone_s": alone_s,
        "good": [seen(r) for r in responses[: len(good)]],
        "bad": [seen(r) for r in responses[len(good) :]],
        "together_s": together_s,
    }


def completion_tokens(seen: list[dict[str, Any]]) -> int:
    return sum(
        item["body"]["usage"]["completion_tokens"]
        for item in seen
        if item["status"] == 200
    )


def run(model_dir: Path, version: str) -> dict[str, Any]:
    # Short: Ray's unix sockets live under it.
    temp_dir = Path(tempfile.mkdtemp(prefix="rv", dir="/tmp"))
    token_path = temp_dir / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    # Ray reads its authentication settings when it is imported.
    os.environ.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_path),
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
    )
    import ray
    from ray import serve

    from ray_serve.vllm_summarizer import VLLMSummarizer

    http_port = free_port()
    model = {
        "id": "summarizer",
        "name": "SmolLM2-135M-Instruct",
        "source": f"path:{model_dir}",
        "version": version,
    }
    try:
        started = time.monotonic()
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp_dir),
            _metrics_export_port=free_port(),
            object_store_memory=256 * 1024 * 1024,
            log_to_driver=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        app = VLLMSummarizer.options(  # type: ignore[attr-defined]
            # Every core: the engine's own processes do the work.
            ray_actor_options={"num_cpus": os.cpu_count()}
        ).bind(model=model, engine=CPU_ENGINE)
        serve.run(app, name="summarizer", route_prefix="/v1/chat/completions")
        deploy_s = time.monotonic() - started
        logger.info("deployed in %.1f s", deploy_s)

        result = asyncio.run(send_all(f"http://127.0.0.1:{http_port}"))
        result["card"] = serve.get_app_handle("summarizer").card.remote().result()
        result["deploy_s"] = deploy_s
        result["tokens_per_s_alone"] = completion_tokens([result["alone"]]) / max(
            result["alone_s"], 1e-9
        )
        result["tokens_per_s_together"] = completion_tokens(result["good"]) / max(
            result["together_s"], 1e-9
        )
        result["expected_version"] = version
        return result
    finally:
        # Serve first, so the replica shuts its engine's processes down itself. Only
        # when Ray is up: Serve would start a cluster of its own to shut down.
        try:
            if ray.is_initialized():
                serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--version", default="q4_1-gguf-bf16")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = run(args.model_dir.resolve(), args.version)
    # The only line on stdout: the test reads it.
    print(json.dumps(result))
    return 0


# vLLM starts its engine in spawned processes, which import this module again.
if __name__ == "__main__":
    sys.exit(main())
