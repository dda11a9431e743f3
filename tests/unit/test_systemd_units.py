"""The production unit files (deploy/systemd) are well-formed, run one process each with the
settings it needs, and name only settings that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import REPO_ROOT
from infra.settings_doc import setting_rows

UNITS = REPO_ROOT / "deploy" / "systemd"
INSTALLED_DAMAI = "/opt/damai/.venv/bin/damai"
PROCESSORS = ("worker", "allocator", "lifecycle", "payments")
KINDS = ("api", *PROCESSORS)
# What the Restart= backoff needs is newer than some systemd still in use (254, August 2023);
# an older one ignores these keys and restarts every RestartSec.
KEYS_OF_SYSTEMD_254 = ("RestartSteps", "RestartMaxDelaySec")
VERIFY_TIMEOUT_S = 60


def _systemd_version(analyze: str) -> int:
    first = subprocess.run([analyze, "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.match(r"systemd (\d+)", first).group(1))  # type: ignore[union-attr]


def _unit(kind: str) -> str:
    return (UNITS / f"damai-{kind}@.service").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_each_unit_passes_systemd_analyze_verify(kind: str, tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    for unit in UNITS.iterdir():
        # verify checks that ExecStart is executable: this checkout's damai stands in for /opt/damai's.
        text = unit.read_text().replace(INSTALLED_DAMAI, str(Path(sys.executable).parent / "damai"))
        (tmp_path / unit.name).write_text(text)

    verified = subprocess.run(
        [analyze, "verify", "--man=no", f"./damai-{kind}@9999.service", "./damai.target"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_S,
    )

    unknown_on_old_systemd = (
        re.compile(rf"Unknown key '({'|'.join(KEYS_OF_SYSTEMD_254)})' in section \[Service\], ignoring\.$")
        if _systemd_version(analyze) < 254
        else None
    )
    complaints = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if line.strip() and not (unknown_on_old_systemd and unknown_on_old_systemd.search(line))
    ]
    assert verified.returncode == 0 and complaints == [], verified.stdout + verified.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_each_unit_reads_the_shared_settings_and_restarts_always(kind: str):
    unit = _unit(kind)

    assert "EnvironmentFile=/etc/damai/damai.env" in unit.splitlines()
    assert "Restart=always" in unit.splitlines()
    assert f"ExecStart={INSTALLED_DAMAI} {'serve' if kind == 'api' else kind}" in unit.splitlines()


def test_the_api_instance_is_its_port():
    assert "Environment=DAMAI_API__PORT=%i" in _unit("api").splitlines()


@pytest.mark.parametrize("kind", PROCESSORS)
def test_each_processor_instance_serves_metrics_on_a_port_of_its_own(kind: str):
    assert "Environment=DAMAI_OBSERVABILITY__METRICS_PORT=%i" in _unit(kind).splitlines()


def test_no_unit_runs_the_payment_sandbox():
    commands = [line for unit in UNITS.glob("*.service") for line in unit.read_text().splitlines() if "Exec" in line]

    assert commands
    assert not [command for command in commands if "sandbox-pay" in command]


def test_the_units_and_the_example_environment_name_only_settings_that_exist():
    known = {env for env, _, _ in setting_rows()}
    named = {
        match
        for path in UNITS.iterdir()
        for match in re.findall(r"^(?:Environment=)?(DAMAI_[A-Z0-9_]+)=", path.read_text(), re.MULTILINE)
    }

    assert named, "no DAMAI_ setting found in deploy/systemd"
    assert named - known == set()
