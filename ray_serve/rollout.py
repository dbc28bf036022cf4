"""Deploy, watch and roll back the AI tier's models through Serve's REST API.

This is what `serve deploy` and `serve status` do, with two things added for the
people who ship models: every deploy first keeps the configuration that was running,
so a rollback is one command, and a deploy is only done when each model answers with
the version the new configuration names.

Serve decides how a change lands. A change to `user_config` alone (batch size and
wait) reconfigures the running replicas in place; a change to an application's
`args` (a model's source or version) starts new replicas and retires the old ones
gradually, while requests keep flowing to whichever replicas are up. Each model is
an application of its own, so deploying one never restarts another.
"""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ray_serve.registry import ModelSpec, model_of

# Keys of `args.model`; a setting `embedder.version=...` goes there.
MODEL_FIELDS = set(ModelSpec.model_fields)
# The deployments' tunables: they travel in `user_config` and change in place.
USER_CONFIG_KEYS = {
    "max_batch_size",
    "batch_wait_timeout_s",
    "max_texts_per_forward",
    "max_tokens_per_forward",
}
# Options of a deployment entry itself (a setting such as `embedder.num_replicas=2`).
DEPLOYMENT_KEYS = {
    "num_replicas",
    "max_ongoing_requests",
    "max_queued_requests",
    "autoscaling_config",
    "ray_actor_options",
    "user_config",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
}
HTTP_OPTION_KEYS = {"host", "port", "root_path", "request_timeout_s"}


class RolloutError(RuntimeError):
    """A deploy was refused, failed, or did not finish in time."""


@dataclass(frozen=True)
class ModelState:
    """One model's application as the cluster reports it."""

    application: str
    status: str
    deployments: dict[str, str]  # deployment: "HEALTHY 1/1 RUNNING", and the like
    configured_version: str | None
    live_version: str | None

    @property
    def line(self) -> str:
        deployments = ", ".join(f"{n} {s}" for n, s in self.deployments.items())
        version = self.live_version or "-"
        if self.configured_version and self.configured_version != self.live_version:
            version = f"{version} -> {self.configured_version}"
        return f"{self.application}: {self.status}, version {version}; {deployments}"


def apply_setting(config: dict[str, Any], setting: str) -> None:
    """Change one option of a serve config, written `APPLICATION.KEY=VALUE`.

    `embedder.version=0.2.0` (also `name`, `source`, `id`) changes the model;
    `embedder.max_batch_size=32` a tunable; `embedder.num_replicas=2` (or another
    deployment option, dotted into nested ones) the deployment; `embedder.args.X=...`
    any other argument of the application.
    """
    target, sep, raw = setting.partition("=")
    application, _, key = target.partition(".")
    if not sep or not key:
        raise ValueError(f"{setting!r}: expected APPLICATION.KEY=VALUE")
    entry = _application(config, application)
    value: Any = yaml.safe_load(raw) if raw else ""
    if key in MODEL_FIELDS:
        model = entry.setdefault("args", {}).get("model")
        if model is None:
            raise ValueError(f"application {application!r} names no model")
        model[key] = str(raw)  # versions such as 1.10 must stay strings
        return
    deployments = entry.get("deployments") or []
    if key in USER_CONFIG_KEYS or key.split(".")[0] in DEPLOYMENT_KEYS:
        if len(deployments) != 1:
            raise ValueError(
                f"application {application!r} has {len(deployments)} deployments; "
                "deployment options need exactly one"
            )
        path = f"user_config.{key}" if key in USER_CONFIG_KEYS else key
        _set_path(deployments[0], path, value)
        return
    if key.startswith("args."):
        _set_path(entry.setdefault("args", {}), key.removeprefix("args."), value)
        return
    raise ValueError(
        f"{setting!r}: unknown key {key!r}; use a model field "
        f"({', '.join(sorted(MODEL_FIELDS))}), a tunable "
        f"({', '.join(sorted(USER_CONFIG_KEYS))}), a deployment option "
        f"({', '.join(sorted(DEPLOYMENT_KEYS))}) or args.NAME"
    )


def _application(config: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in config.get("applications", []):
        if entry.get("name") == name:
            return entry
    names = [entry.get("name") for entry in config.get("applications", [])]
    raise ValueError(f"no application {name!r} in the serve config (has {names})")


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


class ServeAdmin:
    """The Serve REST API of one Ray cluster (on its dashboard's address).

    `history` is a folder of the configurations that ran before each deploy, newest
    last; `serve_url` is the HTTP proxy, whose /v1/models shows which version each
    model's replicas are really serving.
    """

    def __init__(
        self,
        dashboard_url: str,
        token: str | None,
        history: Path,
        serve_url: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.dashboard_url = dashboard_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.history = history
        self.serve_url = serve_url.rstrip("/") if serve_url else None
        self.timeout_s = timeout_s

    # ---- reading ----------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.dashboard_url}/api/serve/applications/",
            headers=self.headers,
            timeout=self.timeout_s,
        )
        response.raise_for_status()
        return response.json()

    def applications(self) -> dict[str, Any]:
        return self.details().get("applications") or {}

    def live_config(self) -> dict[str, Any] | None:
        """The configuration the cluster runs, as a deployable file; None if no
        application was deployed from one."""
        details = self.details()
        applications = [
            app["deployed_app_config"]
            for app in (details.get("applications") or {}).values()
            if app.get("deployed_app_config")
        ]
        if not applications:
            return None
        config: dict[str, Any] = {}
        if details.get("proxy_location"):
            config["proxy_location"] = details["proxy_location"]
        http = {
            key: value
            for key, value in (details.get("http_options") or {}).items()
            if key in HTTP_OPTION_KEYS
        }
        if http:
            config["http_options"] = http
        config["applications"] = applications
        return config

    def live_versions(self) -> dict[str, str]:
        """Model id to the version its replicas answer with, from /v1/models."""
        if not self.serve_url:
            return {}
        try:
            response = httpx.get(f"{self.serve_url}/v1/models", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError:
            return {}
        return {
            item["id"]: str(item.get("version"))
            for item in response.json().get("data", [])
        }

    def states(self, config: dict[str, Any] | None = None) -> list[ModelState]:
        """Each application's state; with a config, the versions it names."""
        applications = self.applications()
        live = self.live_versions()
        wanted = {
            entry["name"]: model_of(entry)
            for entry in (config or {}).get("applications", [])
        }
        states = []
        for name in sorted(set(applications) | set(wanted)):
            app = applications.get(name, {})
            spec = wanted.get(name) or model_of(app.get("deployed_app_config") or {})
            deployments = {
                deployment: _deployment_line(details)
                for deployment, details in sorted(
                    (app.get("deployments") or {}).items()
                )
            }
            states.append(
                ModelState(
                    application=name,
                    status=app.get("status", "NOT_DEPLOYED"),
                    deployments=deployments,
                    configured_version=spec.version if spec else None,
                    live_version=live.get(spec.id) if spec else None,
                )
            )
        return states

    # ---- changing ---------------------------------------------------------------

    def deploy(
        self,
        config: dict[str, Any],
        timeout_s: float = 600.0,
        on_progress: Callable[[list[ModelState]], None] = lambda _: None,
        keep_previous: bool = True,
    ) -> list[ModelState]:
        """Deploy `config` and wait until every model serves the version it names.

        The configuration running before is kept first, for `rollback`."""
        previous = self.live_config()
        if keep_previous and previous is not None:
            self._push(previous)
        response = httpx.put(
            f"{self.dashboard_url}/api/serve/applications/",
            json=config,
            headers=self.headers,
            timeout=self.timeout_s,
        )
        if response.status_code >= 400:
            if keep_previous and previous is not None:
                self._pop()
            raise RolloutError(
                f"Serve refused the config ({response.status_code}): "
                f"{response.text[-2000:]}"
            )
        return self.wait(config, timeout_s, on_progress)

    def rollback(
        self,
        timeout_s: float = 600.0,
        on_progress: Callable[[list[ModelState]], None] = lambda _: None,
    ) -> list[ModelState]:
        """Deploy the configuration that ran before the last deploy."""
        previous = self._peek()
        if previous is None:
            raise RolloutError(f"nothing to roll back to: {self.history} is empty")
        states = self.deploy(previous, timeout_s, on_progress, keep_previous=False)
        self._pop()
        return states

    def wait(
        self,
        config: dict[str, Any],
        timeout_s: float = 600.0,
        on_progress: Callable[[list[ModelState]], None] = lambda _: None,
    ) -> list[ModelState]:
        """Until the cluster runs `config`: each application RUNNING with its
        arguments, every deployment HEALTHY with no replica starting or stopping,
        and each model answering with the version the config names."""
        deadline = time.monotonic() + timeout_s
        last: list[ModelState] | None = None
        while True:
            applications = self.applications()
            states = self.states(config)
            if states != last:
                on_progress(states)
                last = states
            failed = [
                f"{name}: {app.get('message', '')[-1500:]}"
                for name, app in applications.items()
                if app.get("status") == "DEPLOY_FAILED"
            ]
            if failed:
                raise RolloutError("deploy failed:\n" + "\n".join(failed))
            if _rolled_out(config, applications, states, bool(self.serve_url)):
                return states
            if time.monotonic() > deadline:
                lines = "\n".join(state.line for state in states)
                raise RolloutError(f"not rolled out within {timeout_s:.0f} s:\n{lines}")
            time.sleep(1.0)

    # ---- the history of configurations -----------------------------------------

    def _entries(self) -> list[Path]:
        return sorted(self.history.glob("*.yaml")) if self.history.exists() else []

    def _push(self, config: dict[str, Any]) -> None:
        self.history.mkdir(parents=True, exist_ok=True)
        entries = self._entries()
        number = int(entries[-1].stem) + 1 if entries else 1
        path = self.history / f"{number:06d}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _peek(self) -> dict[str, Any] | None:
        entries = self._entries()
        return yaml.safe_load(entries[-1].read_text()) if entries else None

    def _pop(self) -> None:
        entries = self._entries()
        if entries:
            entries[-1].unlink()

    def previous_configs(self) -> int:
        return len(self._entries())


def _deployment_line(details: dict[str, Any]) -> str:
    replicas: dict[str, int] = {}
    for replica in details.get("replicas") or []:
        state = replica.get("state", "UNKNOWN")
        replicas[state] = replicas.get(state, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(replicas.items()))
    target = details.get("target_num_replicas", "?")
    return f"{details.get('status', 'UNKNOWN')} (target {target}: {counts or 'none'})"


def _rolled_out(
    config: dict[str, Any],
    applications: dict[str, Any],
    states: list[ModelState],
    check_versions: bool,
) -> bool:
    by_name = {state.application: state for state in states}
    for entry in config.get("applications", []):
        app = applications.get(entry["name"])
        if not app or app.get("status") != "RUNNING":
            return False
        deployed = app.get("deployed_app_config") or {}
        if deployed.get("args") != entry.get("args") or deployed.get(
            "import_path"
        ) != entry.get("import_path"):
            return False
        deployments = app.get("deployments") or {}
        for wanted in entry.get("deployments") or []:
            # The target the controller works to carries the new options only once
            # the application has been rebuilt from the new config.
            target = deployments.get(wanted.get("name"), {}).get(
                "deployment_config", {}
            )
            if any(
                target.get(key) != wanted[key]
                for key in ("user_config", "max_ongoing_requests", "num_replicas")
                if key in wanted
            ):
                return False
        for details in deployments.values():
            replicas = details.get("replicas") or []
            if details.get("status") != "HEALTHY" or any(
                replica.get("state") != "RUNNING" for replica in replicas
            ):
                return False
        state = by_name.get(entry["name"])
        spec = model_of(entry)
        if check_versions and spec and state and state.live_version != spec.version:
            return False
    return True


def changed_copy(config: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """A copy of `config` with each `APPLICATION.KEY=VALUE` setting applied."""
    changed = copy.deepcopy(config)
    for setting in settings:
        apply_setting(changed, setting)
    return changed
