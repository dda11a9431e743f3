"""Redis from Debian, as our own instance (not the Debian service) with a generated config."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

from infra.stack import accounts, packages, process
from infra.stack.errors import StackError
from infra.stack.service import LOOPBACK, Service

PID_MARKER = "redis-server"
PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
# redis-server forks and returns at once; the daemon writes its pid file a moment later.
PID_FILE_WAIT_S = 5.0
REPLY_BUFFER_BYTES = 256


class Redis(Service):
    name: ClassVar[str] = "redis"
    pid_marker: ClassVar[str] = PID_MARKER
    startup_timeout_s: ClassVar[float] = 30.0
    shutdown_timeout_s: ClassVar[float] = 30.0

    @property
    def conf_file(self) -> Path:
        return self.home / "redis.conf"

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "redis.log"

    @property
    def port(self) -> int:
        return self.settings.redis.port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def install(self) -> None:
        accounts.make_dirs(None, self.home, self.data_dir, self.logs_dir)
        packages.ensure_apt("redis-server", ["redis-server"], self.logs_dir / "install.log")

    def start(self) -> None:
        self.conf_file.write_text(
            "# Written by infra/stack/redis.py on every start; edits are overwritten.\n"
            f"bind {LOOPBACK}\n"
            f"port {self.port}\n"
            "protected-mode yes\n"
            "daemonize yes\n"
            f"pidfile {self.pid_file}\n"
            f"logfile {self.log_file}\n"
            f"dir {self.data_dir}\n"
            # Durability is the append-only file (fsync every second). No RDB snapshots on top:
            # each would fork and write the whole data set (seat inventories are large) every
            # minute under load, a core's worth of work on a small machine.
            "appendonly yes\n"
            "appendfsync everysec\n"
            'save ""\n'
            f"maxmemory {self.settings.redis.maxmemory_mb}mb\n"
            # Seat and order state must never be silently evicted: fail writes instead.
            "maxmemory-policy noeviction\n"
            "always-show-logo no\n"
        )
        process.run(["redis-server", str(self.conf_file)], log_file=self.log_file, what="redis-server")
        if not process.wait_until(lambda: self.running_pid() is not None, PID_FILE_WAIT_S, self.poll_interval_s):
            raise StackError("redis-server exited right after starting", self.log_file)

    def ready(self) -> tuple[bool, str]:
        timeout = self.settings.redis.connect_timeout_s
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
                sock.sendall(PING)
                reply = sock.recv(REPLY_BUFFER_BYTES)
        except OSError as exc:
            return False, f"no answer: {exc}"
        if reply != PONG:
            # e.g. "-LOADING" while the append-only file is replayed after a restart.
            return False, f"PING answered {reply.decode(errors='replace').strip()!r}"
        return True, "PING answered PONG"
