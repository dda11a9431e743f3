"""Elasticsearch from Maven Central's integ-test-zip, run as a dedicated user on a JDK 21+.

Elasticsearch refuses to run as root, so when we are root it runs as
``settings.elasticsearch.os_user``, created on demand. The integ-test-zip is the small
distribution Elasticsearch builds for its own integration tests (see docs/stack.md for
what it lacks compared with the full download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import ClassVar

import structlog

from infra.stack import accounts, packages, process
from infra.stack.errors import StackError
from infra.stack.service import LOOPBACK, Service

log = structlog.get_logger(__name__)

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
JVM_ROOT = Path("/usr/lib/jvm")
MIN_JAVA_MAJOR = 21
PID_MARKER = "org.elasticsearch.bootstrap.Elasticsearch"
CLUSTER_NAME = "damai"
NODE_NAME = "damai-local"
HEALTHY_STATES = ("yellow", "green")
JAVA_VERSION_LINE = re.compile(r'^JAVA_VERSION="([^"]+)"', re.MULTILINE)
# Unix permission bits live in the high 16 bits of a zip entry's external attributes.
ZIP_MODE_SHIFT = 16


def java_major(java_home: Path) -> int | None:
    try:
        match = JAVA_VERSION_LINE.search((java_home / "release").read_text())
    except OSError:
        return None
    if match is None:
        return None
    parts = match.group(1).split(".")
    # Pre-9 JDKs call themselves "1.8.0_x".
    return int(parts[1] if parts[0] == "1" else parts[0])


def find_java_home(configured: str) -> Path:
    if configured:
        home = Path(configured)
        if not (home / "bin" / "java").exists():
            raise StackError(f"elasticsearch.java_home {home} has no bin/java")
        return home
    candidates = []
    for home in JVM_ROOT.iterdir() if JVM_ROOT.exists() else ():
        major = java_major(home)
        if major is not None and major >= MIN_JAVA_MAJOR and (home / "bin" / "java").exists():
            candidates.append((major, home.resolve()))
    if not candidates:
        raise StackError(
            f"Elasticsearch needs a JDK {MIN_JAVA_MAJOR}+ and none lies under {JVM_ROOT}; "
            "install one or set DAMAI_ELASTICSEARCH__JAVA_HOME"
        )
    return max(candidates)[1]


def extract_zip(archive: Path, destination: Path) -> None:
    """Unzip keeping the executable bits (zipfile alone drops them, breaking bin/)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, destination))
            mode = info.external_attr >> ZIP_MODE_SHIFT
            if mode:
                os.chmod(target, mode & 0o7777)


class Elasticsearch(Service):
    name: ClassVar[str] = "elasticsearch"
    pid_marker: ClassVar[str] = PID_MARKER
    startup_timeout_s: ClassVar[float] = 180.0
    shutdown_timeout_s: ClassVar[float] = 60.0

    @property
    def version(self) -> str:
        return self.settings.elasticsearch.version

    @property
    def os_user(self) -> str | None:
        """The user ES runs as; None means "whoever we are" (only root needs another)."""
        return self.settings.elasticsearch.os_user if process.is_root() else None

    @property
    def dist_dir(self) -> Path:
        return self.home / f"elasticsearch-{self.version}"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    @property
    def pid_file(self) -> Path:
        return self.home / "elasticsearch.pid"

    @property
    def log_file(self) -> Path:
        # Elasticsearch names its main log after the cluster.
        main = self.logs_dir / f"{CLUSTER_NAME}.log"
        return main if main.exists() else self.startup_log

    @property
    def startup_log(self) -> Path:
        return self.logs_dir / "startup.log"

    @property
    def url(self) -> str:
        return self.settings.elasticsearch.url.rstrip("/")

    @property
    def http_port(self) -> int:
        port = urllib.parse.urlsplit(self.url).port
        if port is None:
            raise StackError(f"elasticsearch.url {self.url} must name a port")
        return port

    @property
    def address(self) -> str:
        return self.url

    @property
    def ports(self) -> list[int]:
        return [self.http_port]

    def install(self) -> None:
        user = self.os_user
        if user is not None:
            accounts.ensure_system_user(user)
        accounts.make_dirs(user, self.home, self.data_dir, self.logs_dir, self.tmp_dir)
        if user is not None:
            accounts.check_traversable(self.home, user)
        if not self.dist_dir.exists():
            self._unpack()

    def _unpack(self) -> None:
        archive = packages.fetch_artifact(ARTIFACT.format(version=self.version), self.logs_dir / "install.log")
        log.info("stack.elasticsearch_unpack", archive=str(archive), into=str(self.dist_dir))
        # Unpack aside and rename, so an interrupted unzip never looks like an install.
        scratch = self.home / f".unpack-{self.version}"
        shutil.rmtree(scratch, ignore_errors=True)
        extract_zip(archive, scratch)
        (scratch / self.dist_dir.name).rename(self.dist_dir)
        shutil.rmtree(scratch)
        if self.os_user is not None:
            # Elasticsearch writes its keystore into config/ on first start.
            accounts.chown_tree(self.dist_dir, self.os_user)

    def _write_config(self) -> None:
        config = {
            "cluster.name": CLUSTER_NAME,
            "node.name": NODE_NAME,
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            "network.host": LOOPBACK,
            "http.port": self.http_port,
            "discovery.type": "single-node",
            # Tests fill and empty indices on small disks; never go read-only over it.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.destructive_requires_name": True,
            # A loopback-only development node: no TLS or passwords (the zip ships the
            # security module, enabled by default).
            "xpack.security.enabled": False,
        }
        # JSON scalars are valid YAML, which quotes paths safely.
        (self.dist_dir / "config" / "elasticsearch.yml").write_text(
            "# Written by infra/stack/elasticsearch.py on every start; edits are overwritten.\n"
            + "".join(f"{key}: {json.dumps(value)}\n" for key, value in config.items())
        )

    def start(self) -> None:
        self._write_config()
        java_home = find_java_home(self.settings.elasticsearch.java_home)
        heap_mb = self.settings.elasticsearch.heap_mb
        env = {
            "ES_JAVA_HOME": str(java_home),
            "ES_JAVA_OPTS": f"-Xms{heap_mb}m -Xmx{heap_mb}m",
            "ES_TMPDIR": str(self.tmp_dir),
        }
        log.info("stack.elasticsearch_java", java_home=str(java_home))
        # -d returns once the node has started (or failed), leaving the server detached.
        process.run(
            process.as_user(
                [
                    str(self.dist_dir / "bin" / "elasticsearch"),
                    "-d",
                    "-p",
                    str(self.pid_file),
                ],
                self.os_user,
            ),
            env=env,
            cwd=self.logs_dir,
            log_file=self.startup_log,
            timeout_s=self.startup_timeout_s,
            what="elasticsearch -d",
        )

    def ready(self) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(
                f"{self.url}/_cluster/health", timeout=self.settings.elasticsearch.request_timeout_s
            ) as response:
                health = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, f"no cluster health: {exc}"
        state = health.get("status")
        detail = (
            f"Elasticsearch {self.version}, cluster {health.get('cluster_name')} {state}, "
            f"{health.get('number_of_nodes')} node(s)"
        )
        return state in HEALTHY_STATES, detail
