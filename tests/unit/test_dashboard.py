"""The Grafana dashboard (docs/dashboards/damai.json) is valid JSON whose every expression parses
as PromQL and queries only metrics the processes export, and it covers what operators watch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.settings import REPO_ROOT
from tests.promql import METRICS, metric_names

DASHBOARD = REPO_ROOT / "docs" / "dashboards" / "damai.json"
# Grafana's own variable; any range stands for it when promtool parses an expression.
GRAFANA_RANGE = "$__rate_interval"
PROMTOOL_TIMEOUT_S = 60
WATCHED = {
    "damai_http_requests_total",
    "damai_http_request_seconds",
    "damai_consumer_lag_messages",
    "damai_processor_events_total",
    "damai_processor_batch_seconds",
    "damai_dead_letters_total",
    "damai_projector_gaps_total",
    "damai_allocator_decisions_total",
    "damai_allocator_lua_seconds",
    "damai_expiry_backlog_orders",
    "damai_expiry_lateness_seconds",
    "damai_payment_notifications_total",
}


@pytest.fixture(scope="module")
def panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def expressions(panels: list[dict[str, Any]]) -> list[str]:
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_every_panel_has_a_title_a_place_and_a_query_when_loaded(panels: list[dict[str, Any]]) -> None:
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))


def test_every_expression_queries_only_exported_metrics_when_read(panels: list[dict[str, Any]]) -> None:
    unknown = {expr: metric_names(expr) - METRICS for expr in expressions(panels) if metric_names(expr) - METRICS}

    assert unknown == {}


def test_the_dashboard_shows_every_watched_metric_when_read(panels: list[dict[str, Any]]) -> None:
    shown = set().union(*(metric_names(expr) for expr in expressions(panels)))

    assert WATCHED - shown == set()


def test_every_expression_parses_when_checked_by_promtool(
    panels: list[dict[str, Any]], promtool: str, tmp_path: Path
) -> None:
    # promtool parses PromQL offline only inside rules: each expression becomes a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": expr.replace(GRAFANA_RANGE, "5m")}
                    for i, expr in enumerate(expressions(panels))
                ],
            }
        ]
    }
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(json.dumps(rules))

    done = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
