"""Keeping `damai run`'s processes up: a child that dies is started again after a backoff.

Each child runs in a session of its own, so a Ctrl-C at the terminal reaches only the supervisor,
which then stops every child the same way (SIGTERM, then SIGKILL after a grace period) instead of
racing the terminal's SIGINT. On Linux each child also asks the kernel for a SIGTERM when the
supervisor dies, so even a SIGKILLed supervisor leaves no orphan behind.

In production systemd does this job (deploy/systemd, docs/operations.md "Processes").
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType, TracebackType

from infra.settings import RunSettings

STOP_GRACE_S = 15.0
"""How long the children have to stop after SIGTERM before they get SIGKILL (a projector worker
commits its last batch and leaves its group in well under this)."""
POLL_S = 0.2
"""How often the supervisor looks at its children: a death is noticed within this."""
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

Say = Callable[[str], None]


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: its name in the supervisor's lines and its `damai` arguments."""

    name: str
    args: tuple[str, ...]


class RestartBackoff:
    """The wait before a dead process starts again: restart_initial_s, doubling up to restart_max_s,
    and back to restart_initial_s once the process had stayed up healthy_after_s."""

    def __init__(self, settings: RunSettings) -> None:
        self._settings = settings
        self._next_s = settings.restart_initial_s

    def after_exit(self, uptime_s: float) -> float:
        """The wait before the next start of a process that has just died after ``uptime_s`` up."""
        if uptime_s >= self._settings.healthy_after_s:
            self._next_s = self._settings.restart_initial_s
        wait_s = min(self._next_s, self._settings.restart_max_s)
        self._next_s = min(wait_s * 2, self._settings.restart_max_s)
        return wait_s


def exit_reason(returncode: int) -> str:
    """How a child ended, from its Popen return code (negative: the signal that killed it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def _stop_reason(returncode: int) -> str:
    # uvicorn ends on the signal it was stopped by, once it has shut down cleanly.
    return "stopped on SIGTERM" if returncode == -signal.SIGTERM else exit_reason(returncode)


@dataclass
class _Child:
    spec: ProcessSpec
    backoff: RestartBackoff
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The child leads its own process group: whatever it started goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)


class Supervisor:
    """Runs `damai` subcommands as children, restarts each one that dies, and stops them all on
    SIGINT or SIGTERM. Use as a context manager around ``watch``::

        with Supervisor(specs, settings.run, say=print) as supervisor:
            supervisor.watch()
    """

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        settings: RunSettings,
        *,
        say: Say,
        env: Mapping[str, str] | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        poll_s: float = POLL_S,
    ) -> None:
        self._children = [_Child(spec, RestartBackoff(settings)) for spec in specs]
        self._say = say
        self._env = dict(env) if env is not None else None
        self._stop_grace_s = stop_grace_s
        self._poll_s = poll_s
        self._stop_signal: int | None = None
        self._watching = False
        self._stopping = False
        self._kill_now = False

    def __enter__(self) -> Supervisor:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        self.stop()
        # A stop signal before watch() interrupts what ran in between (the demo seed): that is a stop.
        return exc_type is KeyboardInterrupt and self._stop_signal is not None

    def pids(self) -> dict[str, int]:
        """The pid of each running child, by name."""
        return {c.spec.name: c.proc.pid for c in self._children if c.proc is not None and c.running}

    def start(self) -> None:
        """Take over SIGINT and SIGTERM for the rest of this process's life (one arriving after the
        stop is a no-op, not a traceback), then start every child."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_stop_signal)
        for child in self._children:
            self._spawn(child)

    def watch(self) -> None:
        """Restart children as they die until SIGINT or SIGTERM arrives."""
        self._watching = True
        while self._stop_signal is None:
            now = time.monotonic()
            for child in self._children:
                if child.proc is None:
                    if now >= child.restart_at:
                        self._spawn(child)
                elif child.proc.poll() is not None:
                    self._died(child, now)
            time.sleep(self._poll_s)

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL those still up after the grace period, and wait for them all."""
        if self._stopping:
            return
        self._stopping = True
        running = [c for c in self._children if c.running]
        why = signal.Signals(self._stop_signal).name if self._stop_signal is not None else "exiting"
        if running:
            self._say(
                f"{why}: stopping {', '.join(c.spec.name for c in running)} with SIGTERM"
                f" (SIGKILL after {self._stop_grace_s:g}s; a second Ctrl-C sends it now)"
            )
        for child in running:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_grace_s
        while any(c.running for c in running) and time.monotonic() < deadline and not self._kill_now:
            time.sleep(self._poll_s)
        when = "at a second stop signal" if self._kill_now else f"after {self._stop_grace_s:g}s"
        for child in running:
            if child.running and child.proc is not None:
                self._say(f"{child.spec.name} (pid {child.proc.pid}) still up {when}: SIGKILL")
                child.signal(signal.SIGKILL)
        for child in running:
            if child.proc is not None:
                self._say(f"{child.spec.name} (pid {child.proc.pid}) {_stop_reason(child.proc.wait())}")
        if running:
            self._say("every process stopped")

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *child.spec.args],
            env=self._env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
        child.started_at = time.monotonic()
        restarted = f", restart {child.restarts}" if child.restarts else ""
        self._say(f"started {child.spec.name} (pid {child.proc.pid}{restarted})")

    def _died(self, child: _Child, now: float) -> None:
        assert child.proc is not None
        uptime_s = now - child.started_at
        wait_s = child.backoff.after_exit(uptime_s)
        at = (datetime.now() + timedelta(seconds=wait_s)).strftime("%H:%M:%S")
        self._say(
            f"{child.spec.name} (pid {child.proc.pid}) {exit_reason(child.proc.returncode)} after {uptime_s:.1f}s up;"
            f" restarting it in {wait_s:g}s, at {at} (restarted {child.restarts} times so far)"
        )
        child.proc = None
        child.restarts += 1
        child.restart_at = now + wait_s

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping or self._stop_signal is not None:
            self._kill_now = True  # a second stop signal: no more grace
            return
        self._stop_signal = signum
        if not self._watching:
            raise KeyboardInterrupt  # interrupts what runs before watch() (the demo seed) once


def _die_with(parent_pid: int) -> Callable[[], None] | None:
    """What a child runs before exec: ask for SIGTERM when the supervisor dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: nothing may be imported after fork

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the supervisor died before the request took hold
            os._exit(1)

    return die_with_parent
