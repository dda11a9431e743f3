"""Prometheus from Debian, as our own instance (not the Debian service) scraping the API and
the processors on loopback, with the project's alert rules (deploy/prometheus/rules.yml).

Optional: ``damai stack up`` leaves it out; ``damai stack up prometheus`` starts it. The
config is rewritten at every start from ``settings.observability`` and the API's port.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import structlog

from infra.settings import REPO_ROOT, Settings
from infra.stack import accounts, packages, process
from infra.stack.errors import StackError
from infra.stack.service import LOOPBACK, Service

log = structlog.get_logger(__name__)

PID_MARKER = "prometheus"
PACKAGE = "prometheus"
BINARY = "prometheus"
PROMTOOL = "promtool"
RULES_FILE = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"
API_JOB = "api"
# A development stack: a week of samples is plenty, and bounds the disk it takes.
RETENTION = "7d"
# Each target's scrape gives up before the next one is due.
SCRAPE_TIMEOUT_SHARE = 0.8
# A local HTTP answer either comes at once or the server is not ready.
PROBE_TIMEOUT_S = 2.0
# Where Debian's init script keeps the pid of its own service (started by the package's
# postinst on machines that allow it), and how systemd hosts know they run systemd.
DEBIAN_PID_FILE = Path("/run/prometheus/prometheus.pid")
SYSTEMD_RUNTIME = Path("/run/systemd/system")


def scrape_config(settings: Settings) -> dict[str, Any]:
    """The Prometheus configuration: one job for the API and one per processor kind, on loopback."""
    obs = settings.observability
    jobs = {API_JOB: settings.api.port} | {kind: port for kind, port in obs.metrics_ports.items() if port}
    return {
        "global": {
            "scrape_interval": f"{obs.scrape_interval_s}s",
            "scrape_timeout": f"{max(1, int(obs.scrape_interval_s * SCRAPE_TIMEOUT_SHARE))}s",
            "evaluation_interval": f"{obs.scrape_interval_s}s",
        },
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [f"{LOOPBACK}:{port}"]}]}
            for job, port in jobs.items()
        ],
    }


def ensure_installed(log_file: Path) -> None:
    """``prometheus`` and ``promtool`` from Debian; the package's own service is not left running."""
    if shutil.which(BINARY) and shutil.which(PROMTOOL):
        return
    # The package only recommends node-exporter, a second daemon the project does not use.
    packages.ensure_apt(BINARY, [PACKAGE], log_file, recommends=False)
    _stop_debian_service(log_file)


def _stop_debian_service(log_file: Path) -> None:
    if SYSTEMD_RUNTIME.is_dir():
        process.run(
            ["systemctl", "disable", "--now", f"{PACKAGE}.service"],
            log_file=log_file,
            what="systemctl disable --now prometheus",
        )
        return
    pid = process.live_pid(DEBIAN_PID_FILE, PID_MARKER)
    if pid is not None:
        log.info("stack.stopping_debian_service", service=PACKAGE, pid=pid)
        process.signal_terminate(pid)


class Prometheus(Service):
    name: ClassVar[str] = "prometheus"
    pid_marker: ClassVar[str] = PID_MARKER
    startup_timeout_s: ClassVar[float] = 60.0
    # It writes its head block's checkpoint on SIGTERM; small here.
    shutdown_timeout_s: ClassVar[float] = 30.0

    @property
    def conf_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def pid_file(self) -> Path:
        return self.home / "prometheus.pid"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "prometheus.log"

    @property
    def port(self) -> int:
        return self.settings.observability.prometheus_port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def address(self) -> str:
        return self.url

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def install(self) -> None:
        accounts.make_dirs(None, self.home, self.data_dir, self.logs_dir)
        ensure_installed(self.logs_dir / "install.log")
        if not RULES_FILE.exists():
            raise StackError(f"the alert rules {RULES_FILE} are missing")

    def start(self) -> None:
        # JSON is YAML: the config needs no YAML library, and stays exact.
        self.conf_file.write_text(
            "# Written by infra/stack/prometheus.py on every start; edits are overwritten.\n"
            + json.dumps(scrape_config(self.settings), indent=2)
            + "\n"
        )
        pid = process.spawn_detached(
            [
                BINARY,
                f"--config.file={self.conf_file}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                # POST /-/reload picks up edited rules without a restart.
                "--web.enable-lifecycle",
            ],
            log_file=self.log_file,
            cwd=self.home,
        )
        process.write_pid(self.pid_file, pid)

    def ready(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=PROBE_TIMEOUT_S) as response:
                answer = response.read().decode(errors="replace").strip()
        except (urllib.error.URLError, OSError) as exc:
            return False, f"/-/ready: {exc}"
        return True, answer

    def probe(self) -> tuple[bool, str]:
        ready, detail = self.ready()
        if not ready:
            return ready, detail
        try:
            targets = self._get("/api/v1/targets?state=active")["activeTargets"]
            groups = self._get("/api/v1/rules?type=alert")["groups"]
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            return False, f"ready, but its API did not answer: {exc}"
        up = sum(1 for t in targets if t.get("health") == "up")
        rules = [rule for group in groups for rule in group.get("rules", [])]
        firing = sum(1 for rule in rules if rule.get("state") == "firing")
        scraped = f"targets up {up}/{len(targets)}" if targets else "no target scraped yet"
        return True, f"{scraped}, {len(rules)} alert rules, {firing} firing"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=PROBE_TIMEOUT_S) as response:
            return json.load(response)["data"]
