"""The model registry: every model the AI tier serves, as the serve config names it.

Each Serve application in `serve_config.yaml` serves one model. Its `args.model` says
which: a logical name that clients ask for (`embedder`, `summarizer`), the model's own
name, where its weights come from, and the version recorded on everything it makes.
The deployment options beside it (batch size and wait, replicas or autoscaling,
resources) are the application's `deployments` entry.

Sources:

    package:NAME/SUBPATH   a folder or file inside an installed Python package
    path:PATH              a local folder or file (relative to the working directory)
    hub:ORG/NAME           a model hub id, for machines that can reach the hub
"""

import importlib.util
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelSourceError(ValueError):
    """A model's source cannot be found or is not allowed here."""


class ModelSpec(BaseModel):
    """One model, as its Serve application's `args.model`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="What clients ask for: the OpenAI `model` field.")
    name: str = Field(description="The model's own name, recorded on results.")
    source: str = Field(description="package:…, path:… or hub:… (see the module).")
    version: str = Field(description="Recorded on every embedding or summary.")


def resolve_source(source: str) -> str:
    """A local path (folder or file) or a hub id that the model loaders accept."""
    kind, _, rest = source.partition(":")
    if not rest:
        raise ModelSourceError(f"model source {source!r} has no kind: package:, path:")
    if kind == "package":
        package, _, inner = rest.partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(f"package {package!r} of {source!r} not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    elif kind == "path":
        path = Path(rest).expanduser().resolve()
    elif kind == "hub":
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ModelSourceError(
                f"{source!r} needs the model hub, but HF_HUB_OFFLINE=1 here: "
                "use a package: or path: source"
            )
        return rest
    else:
        raise ModelSourceError(f"unknown kind {kind!r} in model source {source!r}")
    if not path.exists():
        raise ModelSourceError(f"{source!r}: {path} does not exist")
    return str(path)


def model_of(application: dict[str, Any]) -> ModelSpec | None:
    """The model a serve-config application serves, if it serves one."""
    model = (application.get("args") or {}).get("model")
    return ModelSpec.model_validate(model) if model else None


def deployment_entry(config: dict[str, Any], deployment: str) -> dict[str, Any]:
    """The options of a deployment (by name) in a serve config, to read or change."""
    for application in config.get("applications", []):
        for entry in application.get("deployments", []):
            if entry.get("name") == deployment:
                return entry
    raise KeyError(f"no deployment {deployment!r} in the serve config")
