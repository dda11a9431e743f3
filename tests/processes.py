"""Starting the project's own processes (API, workers) as children of a test, for real."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from infra.settings import Settings

STOP_TIMEOUT_S = 20.0
POLL_S = 0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A `damai` subcommand running in its own process, with its output in a log file."""

    def __init__(self, args: list[str], settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None):
        self.log_path = log_path
        self._log = log_path.open("wb")
        # No /metrics port unless the test asks for one: several processes of a kind run at once,
        # and the default ports belong to whatever else runs on this machine.
        metrics_off = {"DAMAI_OBSERVABILITY__METRICS_PORT": "0"}
        env = {**os.environ, **settings.namespace_env(), **metrics_off, **(extra_env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Await ``check`` until it holds; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def start_api(settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None) -> tuple[Child, str]:
    child = Child(["cli.main", "serve"], settings, log_path, extra_env)
    base = f"http://{settings.api.host}:{settings.api.port}"

    def alive() -> bool:
        if child.proc.poll() is not None:
            raise AssertionError(f"API exited early:\n{child.output()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(alive, 30, "the API to answer /healthz")
    return child, base


def start_worker(settings: Settings, log_path: Path) -> Child:
    return Child(["cli.main", "worker"], settings, log_path)
