"""What every managed service shares: the status record and the up/down cycle.

A service subclass says how to install, start, probe and stop one server; this base class
turns that into an idempotent ``up`` (confirm health when already running, otherwise install,
start and wait) and a graceful ``down``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import structlog

from infra.settings import Settings
from infra.stack import process
from infra.stack.errors import StackError

log = structlog.get_logger(__name__)

# Every server of the local stack binds here only.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    healthy: bool
    pid: int | None
    rss_mb: float | None
    """Memory of the service's whole process tree (proportional set size where readable)."""
    detail: str


class Service(abc.ABC):
    name: ClassVar[str]
    pid_marker: ClassVar[str]
    """Text in the server's command line that tells our process from a reused pid."""
    startup_timeout_s: ClassVar[float]
    shutdown_timeout_s: ClassVar[float]
    # Poll cadence while waiting for a server to come up or go away.
    poll_interval_s: ClassVar[float] = 0.2

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"

    # --- what a service must say -------------------------------------------------------

    @property
    @abc.abstractmethod
    def address(self) -> str: ...

    @property
    @abc.abstractmethod
    def log_file(self) -> Path:
        """The log to read when this service misbehaves."""

    @property
    @abc.abstractmethod
    def ports(self) -> list[int]:
        """Ports the server binds; they must be free before it starts."""

    @property
    @abc.abstractmethod
    def pid_file(self) -> Path:
        """Where the server (or we, for it) records its pid."""

    @abc.abstractmethod
    def ready(self) -> tuple[bool, str]:
        """Does the server answer a real request? Returns (ready, detail)."""

    @abc.abstractmethod
    def install(self) -> None:
        """Fetch binaries and lay out directories; cheap when already done."""

    @abc.abstractmethod
    def start(self) -> None:
        """Write config and launch the server in the background."""

    # --- optional hooks ----------------------------------------------------------------

    def running_pid(self) -> int | None:
        """Pid of our live server process, or None (a stale pid file counts as None)."""
        return process.live_pid(self.pid_file, self.pid_marker)

    def clear_stale_state(self) -> None:
        """Remove pid files left by a process that is gone."""
        process.remove_if_stale(self.pid_file, self.pid_marker)

    def ensure_objects(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Create what the project needs inside a ready server (roles, databases)."""

    def probe(self) -> tuple[bool, str]:
        """Full health as the application sees it; defaults to ``ready``."""
        return self.ready()

    def stop(self, pid: int) -> None:
        process.signal_terminate(pid)

    # --- the cycle -----------------------------------------------------------------------

    def up(self) -> None:
        started = self.running_pid() is None
        if started:
            log.info("stack.starting", service=self.name, address=self.address)
            self.clear_stale_state()
            self.install()
            self._check_ports_free()
            self.start()
        self._wait_ready()
        if started:
            self.ensure_objects()
        healthy, detail = self.probe()
        if not healthy and not started:
            # A server that was already up only pays for creating roles/databases when its
            # probe fails (e.g. a database was added to settings): the warm path stays fast.
            self.ensure_objects()
            healthy, detail = self.probe()
        if not healthy:
            raise StackError(f"{self.name} is running but unhealthy: {detail}", self.log_file)
        log.info("stack.up", service=self.name, address=self.address, pid=self.running_pid())

    def down(self) -> None:
        pid = self.running_pid()
        if pid is None:
            self.clear_stale_state()
            log.info("stack.already_stopped", service=self.name)
            return
        log.info("stack.stopping", service=self.name, pid=pid)
        self.stop(pid)
        if not process.wait_for_exit(pid, self.shutdown_timeout_s, self.poll_interval_s):
            log.warning(
                "stack.stop_timeout_killing",
                service=self.name,
                pid=pid,
                timeout_s=self.shutdown_timeout_s,
            )
            process.signal_kill(pid)
            if not process.wait_for_exit(pid, self.shutdown_timeout_s, self.poll_interval_s):
                raise StackError(f"{self.name} (pid {pid}) did not exit", self.log_file)
        self.clear_stale_state()
        log.info("stack.stopped", service=self.name)

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            taken = [port for port in self.ports if process.port_open(LOOPBACK, port)]
            detail = "not running" + (f" (but something else listens on {taken})" if taken else "")
            return ServiceStatus(self.name, self.address, False, None, None, detail)
        healthy, detail = self.probe()
        return ServiceStatus(self.name, self.address, healthy, pid, process.tree_memory_mb(pid), detail)

    # --- helpers -------------------------------------------------------------------------

    def _check_ports_free(self) -> None:
        for port in self.ports:
            if process.port_open(LOOPBACK, port):
                raise StackError(
                    f"{self.name}: port {port} on {LOOPBACK} is already taken by a process "
                    f"this stack does not know about (its pid file under {self.home} is "
                    "missing or stale); stop that process or change the port in settings",
                    self.log_file,
                )

    def _wait_ready(self) -> None:
        detail = "no answer yet"

        def check() -> bool:
            nonlocal detail
            if self.running_pid() is None:
                raise StackError(f"{self.name} exited during startup", self.log_file)
            ok, detail = self.ready()
            return ok

        if not process.wait_until(check, self.startup_timeout_s, self.poll_interval_s):
            raise StackError(
                f"{self.name} did not become ready within {self.startup_timeout_s:.0f} s ({detail})",
                self.log_file,
            )
