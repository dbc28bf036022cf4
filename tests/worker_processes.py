"""The three workers as real processes, for tests that kill, restart or load them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orchestration.config import Settings
from tests.conftest import FAULTS_NAMESPACE

TIERS = ("general", "storage", "ai")
WORDS = (
    "queue",
    "worker",
    "retry",
    "backoff",
    "ledger",
    "shard",
    "replica",
    "index",
    "vector",
    "batch",
    "lease",
    "heartbeat",
    "journal",
    "commit",
    "snapshot",
    "cursor",
    "window",
    "latency",
    "throughput",
    "budget",
)


class WorkerProcesses:
    """The three workers as real processes, killable and restartable one by one."""

    def __init__(
        self,
        settings: Settings,
        logs: Path,
        temporal_address: str | None = None,
        namespace: str = FAULTS_NAMESPACE,
    ) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "HEYSH_TEMPORAL_ADDRESS": temporal_address or settings.temporal_address,
            "HEYSH_TEMPORAL_NAMESPACE": namespace,
            "HEYSH_DATABASE_URL": settings.database_url,
            "HEYSH_SERVE_URL": settings.serve_url,
            "HEYSH_RAY_DASHBOARD_URL": settings.dashboard_url,
            "HEYSH_BLOB_ROOT": str(settings.blob_directory),
            "HEYSH_STATE_DIR": str(settings.resolved_state_dir),
            "HEYSH_SUMMARY_MAX_TOKENS": str(settings.summary_max_tokens),
        }

    def start(self, tier: str, env: dict[str, str] | None = None) -> Path:
        log = self.logs / f"{tier}-{time.monotonic_ns()}.log"
        with open(log, "wb") as out:
            self.processes[tier] = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "worker", tier],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while "worker polling" not in log.read_text(errors="replace"):
            assert self.processes[tier].poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{tier} worker did not start"
            time.sleep(0.2)
        return log

    def kill(self, tier: str) -> None:
        process = self.processes.pop(tier)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
