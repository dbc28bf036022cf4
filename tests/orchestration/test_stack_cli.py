"""`heysh up`, `process`, `search` and `down` as a newcomer runs them.

The CLI starts its own Temporal, PostgreSQL, Ray Serve and three worker processes on
free ports under a temporary state directory; `down` must leave none of them running,
and a second `up` must find the same data.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import SAMPLES, free_port

pytestmark = pytest.mark.slow

HEYSH = str(Path(sys.executable).parent / "heysh")


def stack_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process that belongs to this stack: the recorded process groups,
    the postmaster and its children."""
    found = []
    pids_dir = state_dir / "pids"
    groups = {int(p.read_text().split()[0]) for p in pids_dir.glob("*.pid")}
    marker = str(state_dir)
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.info["cmdline"] or [])
            if os.getpgid(process.pid) in groups or marker in cmdline:
                found.append(process)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    return found


def test_up_process_search_down_leaves_nothing_running(tmp_path: Path) -> None:
    state_dir = (tmp_path / "state").resolve()
    env = {
        **os.environ,
        "HEYSH_STATE_DIR": str(state_dir),
        "HEYSH_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "HEYSH_TEMPORAL_UI_PORT": str(free_port()),
        "HEYSH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/heysh",
        "HEYSH_SERVE_URL": f"http://127.0.0.1:{free_port()}",
        "HEYSH_RAY_PORT": str(free_port()),
        "HEYSH_RAY_DASHBOARD_PORT": str(free_port()),
        "HEYSH_RAY_METRICS_PORT": str(free_port()),
        "HEYSH_WORKER_METRICS_PORT_BASE": str(free_port()),
        "HEYSH_API_PORT": str(free_port()),
        "HEYSH_SUMMARY_MAX_TOKENS": "32",
        "COLUMNS": "200",  # tables print whole lines, not wrapped cells
    }

    def heysh(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [HEYSH, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    document = SAMPLES / "incident-report.md"
    try:
        up = heysh("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "worker-ai" in up.stdout

        processed = heysh("process", str(document))
        assert processed.returncode == 0, processed.stdout + processed.stderr
        assert "1 of 1 documents completed" in processed.stdout

        queues = heysh("queues")
        assert queues.returncode == 0, queues.stderr
        for name in ("ai-processing-queue", "storage-queue", "general-queue"):
            assert name in queues.stdout
        assert "embedder/Embedder" in queues.stdout

        models = heysh("models", "status")
        assert models.returncode == 0, models.stdout + models.stderr
        for application in ("embedder", "summarizer", "models"):
            assert application in models.stdout
        assert "0.1.0" in models.stdout  # the embedder's version, live

        found = heysh("search", "the database disk filled up and writes stopped")
        assert found.returncode == 0, found.stderr
        assert "incident-report.md" in found.stdout

        # The HTTP API that `up` started answers with the key it wrote.
        api = f"http://127.0.0.1:{env['HEYSH_API_PORT']}"
        key = (state_dir / "api_key").read_text().strip()
        hits = httpx.get(
            f"{api}/v1/search",
            params={"q": "the database disk filled up"},
            headers={"X-API-Key": key},
            timeout=60,
        )
        assert hits.status_code == 200, hits.text
        assert "incident-report.md" in hits.text
        assert httpx.get(f"{api}/v1/search", params={"q": "x"}).status_code == 401

        # Each worker serves its metrics where `status` says.
        status = heysh("status")
        assert f"{api}/docs" in status.stdout
        metrics_base = int(env["HEYSH_WORKER_METRICS_PORT_BASE"])
        ai_metrics = httpx.get(f"http://127.0.0.1:{metrics_base + 2}/metrics").text
        assert "heysh_chunks_embedded" in ai_metrics

        running = stack_processes(state_dir)
        assert len(running) >= 6
        down = heysh("down")
        assert down.returncode == 0, down.stderr
        assert [p for p in running if p.is_running() and p.status() != "zombie"] == []
        assert stack_processes(state_dir) == []
        for tier in ("ai", "storage", "general"):
            log = (state_dir / "logs" / f"worker-{tier}.log").read_text()
            assert "stopped" in log.splitlines()[-1], f"{tier} worker did not drain"

        # The same data is there after a restart: the finished workflow is found.
        up_again = heysh("up")
        assert up_again.returncode == 0, up_again.stdout + up_again.stderr
        again = heysh("process", str(document))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "attached to 1 workflow" in again.stdout
    finally:
        final = heysh("down")
    assert stack_processes(state_dir) == [], final.stdout + final.stderr
