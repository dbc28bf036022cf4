"""The two Serve configs, checked offline: the laptop profile that `heysh up` deploys
and the production profile that cluster.yaml deploys onto T4 workers must both pass
Serve's own schema, serve the same routes and model ids, and the production one must
put every model on a T4 within the capacity table's replica bounds."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from ray_serve import app as builders
from ray_serve.registry import model_of

REPO = Path(__file__).resolve().parents[2]
CPU = REPO / "ray_serve" / "serve_config.yaml"
GPU = REPO / "ray_serve" / "serve_config.gpu.yaml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", [CPU, GPU], ids=["cpu", "gpu"])
def test_each_profile_passes_serves_schema_and_its_builders_bind(path: Path) -> None:
    config = load(path)
    ServeDeploySchema.model_validate(config)
    for application in config["applications"]:
        module, _, name = application["import_path"].partition(":")
        assert module == "ray_serve.app"
        # Binding checks the arguments' names without loading a model.
        getattr(builders, name)(application.get("args") or {})


def routes(config: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Each application's route prefix and the model id it serves."""
    found = {}
    for application in config["applications"]:
        spec = model_of(application)
        found[application["name"]] = (
            application["route_prefix"],
            spec.id if spec else None,
        )
    return found


def test_both_profiles_serve_the_same_routes_and_models() -> None:
    assert routes(load(CPU)) == routes(load(GPU))


def test_the_production_profile_puts_every_model_on_a_t4() -> None:
    config = load(GPU)
    for application in config["applications"]:
        if model_of(application) is None:
            continue
        for deployment in application["deployments"]:
            actor = deployment["ray_actor_options"]
            assert actor.get("num_gpus", 0) > 0, deployment["name"]
            assert actor.get("accelerator_type") == "T4", deployment["name"]
            scaling = deployment["autoscaling_config"]
            # The capacity table: 1-2 replicas, 5 concurrent per replica.
            assert (scaling["min_replicas"], scaling["max_replicas"]) == (1, 2)
            assert scaling["target_ongoing_requests"] == 5
    summarizer = next(a for a in config["applications"] if a["name"] == "summarizer")
    assert summarizer["import_path"] == "ray_serve.app:vllm_summarizer_app"
    # A T4 has no bfloat16.
    assert summarizer["args"]["engine"]["dtype"] in ("half", "float16")
