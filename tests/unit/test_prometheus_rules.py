"""The alert rules (deploy/prometheus/rules.yml) are valid and each one is shown, by promtool, to
fire on series that should fire it and not on series that should not (rules_test.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.stack import process
from infra.stack.errors import StackError
from infra.stack.prometheus import PROMTOOL, RULES_FILE, ensure_installed

RULES_TEST = RULES_FILE.with_name("rules_test.yml")
PROMTOOL_TIMEOUT_S = 60
ALERT = re.compile(r"^\s*- alert: (\w+)$", re.MULTILINE)
# One alert_rule_test case: the alert's name, then the alerts expected (or none: "[]").
CASE = re.compile(r"alertname: (\w+)\n\s*exp_alerts:( \[\])?")


@pytest.fixture(scope="module")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool, installed as `damai stack up prometheus` installs it when it is missing."""
    found = shutil.which(PROMTOOL)
    if found is None and process.is_root():
        try:
            ensure_installed(tmp_path_factory.mktemp("prometheus") / "install.log")
        except StackError as exc:
            pytest.skip(f"promtool is missing and installing Debian's prometheus package failed: {exc}")
        found = shutil.which(PROMTOOL)
    if found is None:
        pytest.skip("promtool is missing (Debian package prometheus) and only root may install it")
    return found


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
