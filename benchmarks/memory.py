"""Resident memory of each stack component, sampled idle and under load.

Components are found from the stack's own process records: each service's process
group (and every descendant, for Ray's workers), PostgreSQL's postmaster and its
backends. Ray's processes are split by what they run: the Serve replicas of each
deployment, Serve's proxy, controller and model index, and Ray itself.
"""

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import psutil

from orchestration.stack import WORKER_TIERS, Stack

_RAY_PARTS = (
    ("ServeReplica:embedder:Embedder", "serve Embedder replica"),
    ("ServeReplica:summarizer:Summarizer", "serve Summarizer replica"),
    ("ServeReplica:models:ModelIndex", "serve model index, proxy, controller"),
    ("ProxyActor", "serve model index, proxy, controller"),
    ("ServeController", "serve model index, proxy, controller"),
)


def _group_and_descendants(pid_file: Path) -> list[psutil.Process]:
    if not pid_file.exists():
        return []
    pgid = int(pid_file.read_text().split()[0])
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found[process.pid] = process
                for child in process.children(recursive=True):
                    found[child.pid] = child
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return list(found.values())


def _ray_part(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "ray core"
    for marker, part in _RAY_PARTS:
        if marker in command:
            return part
    return "ray core"


def component_processes(
    stack: Stack, extra: dict[str, int] | None = None
) -> dict[str, list[psutil.Process]]:
    components: dict[str, list[psutil.Process]] = {
        "temporal": _group_and_descendants(stack.pids / "temporal.pid")
    }
    postmaster = stack.postgres_pid()
    if postmaster:
        root = psutil.Process(postmaster)
        components["postgres"] = [root, *root.children(recursive=True)]
    for process in _group_and_descendants(stack.pids / "ray.pid"):
        components.setdefault(_ray_part(process), []).append(process)
    for tier in WORKER_TIERS:
        components[f"worker {tier}"] = _group_and_descendants(
            stack.pids / f"worker-{tier}.pid"
        )
    for name, pid in (extra or {}).items():
        try:
            root = psutil.Process(pid)
            components[name] = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    return components


def rss_of(processes: Iterable[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def snapshot(stack: Stack, extra: dict[str, int] | None = None) -> dict[str, int]:
    return {
        name: rss_of(processes)
        for name, processes in component_processes(stack, extra).items()
    }


class PeakSampler:
    """Samples every component's RSS in a thread and keeps each one's peak."""

    def __init__(self, stack: Stack, interval_s: float = 1.0) -> None:
        self.stack = stack
        self.interval_s = interval_s
        self.peaks: dict[str, int] = {}
        self.extra: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for name, rss in snapshot(self.stack, self.extra).items():
            self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        return dict(self.peaks)
