"""The local Prometheus' configuration and its place among the stack's services."""

from __future__ import annotations

from infra import stack
from infra.settings import Settings
from infra.stack.prometheus import RULES_FILE, scrape_config


def targets_by_job(settings: Settings) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in scrape_config(settings)["scrape_configs"]
    }


def test_config_scrapes_the_api_and_each_processor_kind_on_loopback_when_written() -> None:
    settings = Settings()

    jobs = targets_by_job(settings)

    assert jobs == {
        "api": [f"127.0.0.1:{settings.api.port}"],
        **{kind: [f"127.0.0.1:{port}"] for kind, port in settings.observability.metrics_ports.items()},
    }


def test_config_leaves_out_a_kind_when_its_metrics_port_is_0() -> None:
    settings = Settings()
    settings.observability.metrics_ports["payments"] = 0

    assert "payments" not in targets_by_job(settings)


def test_config_scrapes_and_evaluates_every_scrape_interval_and_loads_the_rules_when_written() -> None:
    settings = Settings()
    settings.observability.scrape_interval_s = 15

    config = scrape_config(settings)

    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == [str(RULES_FILE)]


def test_prometheus_is_known_but_not_started_by_default_when_the_stack_comes_up() -> None:
    assert "prometheus" in stack.KNOWN_SERVICES
    assert "prometheus" not in stack.SERVICES
