"""The alert rules (deploy/prometheus/rules.yml) are valid and each one is shown, by promtool, to
fire on series that should fire it and not on series that should not (rules_test.yml)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from infra.stack.prometheus import RULES_FILE
from tests.promql import METRICS, metric_names

RULES_TEST = RULES_FILE.with_name("rules_test.yml")
PROMTOOL_TIMEOUT_S = 60
ALERT = re.compile(r"^\s*- alert: (\w+)$", re.MULTILINE)
# One alert_rule_test case: the alert's name, then the alerts expected (or none: "[]").
CASE = re.compile(r"alertname: (\w+)\n\s*exp_alerts:( \[\])?")
# An expression on its line, or a block (`expr: |`) of the lines indented under it.
EXPR = re.compile(r"^(\s*)expr: (?:\|\n((?:\1\s+.*\n)+)|(.+)$)", re.MULTILINE)


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        cwd=RULES_FILE.parent,
        check=False,
    )


def test_rules_are_valid_when_checked_by_promtool(promtool: str) -> None:
    done = run_promtool(promtool, "check", "rules", RULES_FILE)

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_and_stays_quiet_as_specified_when_tested_by_promtool(promtool: str) -> None:
    done = run_promtool(promtool, "test", "rules", RULES_TEST)

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case_when_the_tests_are_read() -> None:
    alerts = set(ALERT.findall(RULES_FILE.read_text()))
    cases = CASE.findall(RULES_TEST.read_text())

    firing = {name for name, quiet in cases if not quiet}
    quiet = {name for name, empty in cases if empty}

    assert alerts, "no alerts found in rules.yml"
    assert alerts - firing == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


def test_every_rule_queries_only_metrics_the_processes_export_when_its_expression_is_read() -> None:
    exprs = [block or line for _, block, line in EXPR.findall(RULES_FILE.read_text())]

    unknown = {expr.strip(): metric_names(expr) - METRICS for expr in exprs if metric_names(expr) - METRICS}

    assert len(exprs) == len(ALERT.findall(RULES_FILE.read_text()))
    assert unknown == {}
