"""The scrape config and dashboard in observability/ agree with the stack's settings."""

import json

import yaml

from orchestration.config import Settings
from orchestration.queues import Queue
from orchestration.stack import WORKER_TIERS
from tests.conftest import REPO

OBSERVABILITY = REPO / "observability"


def test_the_scrape_config_targets_the_ports_heysh_up_uses() -> None:
    settings = Settings()
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    workers = {
        group["labels"]["tier"]: group["targets"]
        for group in jobs["heysh-workers"]["static_configs"]
    }
    assert workers == {
        tier: [f"127.0.0.1:{settings.worker_metrics_port_base + index}"]
        for index, tier in enumerate(WORKER_TIERS)
    }
    [serve] = jobs["ray-serve"]["static_configs"]
    assert serve["targets"] == [f"127.0.0.1:{settings.ray_metrics_port}"]


def test_the_dashboard_offers_the_three_queues_and_uses_one_datasource() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    [queues] = [v for v in dashboard["templating"]["list"] if v["name"] == "task_queue"]
    assert {option["value"] for option in queues["options"]} == {q.value for q in Queue}
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {
        "${datasource}"
    }
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
