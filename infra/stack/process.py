"""Processes on this machine: pid files, liveness, ports, waiting, memory, running commands."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from infra.stack.errors import StackError

PROC = Path("/proc")
# A local connect either succeeds or is refused at once; anything slower means "not open".
PORT_PROBE_TIMEOUT_S = 0.5
# Generous bound for one-off setup commands (initdb, psql, mvn on a warm cache, apt).
COMMAND_TIMEOUT_S = 600.0
KIB_PER_MIB = 1024
# A failing command's own words, when it has no log file to point at.
ERROR_OUTPUT_CHARS = 2000
# Maven 3.8 emits colour resets even in batch mode; keep them out of logs and messages.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def read_pid(pid_file: Path) -> int | None:
    try:
        # Postgres' postmaster.pid holds more than the pid; the pid is always its first line.
        first = pid_file.read_text().split("\n", 1)[0].strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(first) if first.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


def is_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs and its command line contains ``marker``.

    The marker guards against pid reuse after a crash: a stale pid file may name an
    unrelated process. Zombies count as dead (nothing may reap orphans in a container).
    """
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and marker.encode() in cmdline


def live_pid(pid_file: Path, marker: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid is not None and is_alive(pid, marker) else None


def remove_if_stale(pid_file: Path, marker: str) -> None:
    if pid_file.exists() and live_pid(pid_file, marker) is None:
        pid_file.unlink(missing_ok=True)


def port_open(host: str, port: int, timeout_s: float = PORT_PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _gone(pid: int) -> bool:
    return not is_alive(pid, "")


def wait_for_exit(pid: int, timeout_s: float, interval_s: float) -> bool:
    return wait_until(lambda: _gone(pid), timeout_s, interval_s)


def signal_terminate(pid: int) -> None:
    _signal(pid, signal.SIGTERM)


def signal_kill(pid: int) -> None:
    _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_by_parent()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _memory_kib(pid: int) -> int | None:
    # Pss shares each page among the processes mapping it, so summing a tree (Postgres'
    # backends all map shared_buffers) does not count shared memory many times over.
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            for line in (PROC / str(pid) / name).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


def tree_memory_mb(pid: int) -> float | None:
    sizes = [kib for p in process_tree(pid) if (kib := _memory_kib(p)) is not None]
    return round(sum(sizes) / KIB_PER_MIB, 1) if sizes else None


def is_root() -> bool:
    return os.geteuid() == 0


def as_user(cmd: Sequence[str], user: str | None) -> list[str]:
    """Wrap ``cmd`` to run as ``user`` when we are root; otherwise run it as ourselves."""
    if user is None or not is_root() or pwd.getpwuid(os.geteuid()).pw_name == user:
        return list(cmd)
    return ["runuser", "-u", user, "--", *cmd]


def run(
    cmd: Sequence[str],
    *,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout_s: float = COMMAND_TIMEOUT_S,
    what: str | None = None,
) -> str:
    """Run a command to completion and return its stdout; raise StackError when it fails.

    With ``log_file`` the command's stderr (and the stdout, on failure) is appended there,
    so the exception can point at it.
    """
    full_env = {**os.environ, **(env or {})}
    try:
        done = subprocess.run(
            list(cmd),
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise StackError(f"{what or cmd[0]}: command not found: {cmd[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what or cmd[0]}: timed out after {timeout_s:.0f} s", log_file) from exc
    stdout, stderr = ANSI_ESCAPE.sub("", done.stdout), ANSI_ESCAPE.sub("", done.stderr)
    if log_file is not None and (stderr.strip() or done.returncode != 0):
        with log_file.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{stdout}{stderr}")
    if done.returncode != 0:
        message = f"{what or ' '.join(cmd)} failed with exit code {done.returncode}"
        if log_file is None:
            message += f": {(stderr or stdout).strip()[-ERROR_OUTPUT_CHARS:]}"
        raise StackError(message, log_file)
    return stdout


def spawn_detached(cmd: Sequence[str], *, log_file: Path, cwd: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a long-running server that outlives us and return its pid.

    A throwaway shell backgrounds the server and exits, so the server is re-parented away
    from this Python process: no zombie if it dies while we run, no "still running"
    ResourceWarning from a dropped Popen. start_new_session keeps a Ctrl-C in our
    terminal from reaching it.
    """
    launcher = 'exec 0</dev/null; "$@" >>"$DAMAI_LOG" 2>&1 & echo $!'
    out = subprocess.run(
        ["sh", "-c", launcher, "sh", *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "DAMAI_LOG": str(log_file)},
        cwd=cwd,
        start_new_session=True,
        check=True,
    ).stdout
    return int(out.strip())
