"""The local stack: PostgreSQL, Redis, Kafka and Elasticsearch on loopback, for development
and tests, and on request Prometheus. ``up`` installs what is missing, starts and waits for
health; ``down`` stops; ``status`` reports. Everything lives under ``settings.state_dir``;
docs/stack.md explains.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from infra.settings import Settings
from infra.stack.elasticsearch import Elasticsearch
from infra.stack.errors import StackError
from infra.stack.kafka.broker import KafkaBroker
from infra.stack.postgres import Postgres
from infra.stack.prometheus import Prometheus
from infra.stack.redis import Redis
from infra.stack.service import Service, ServiceStatus

__all__ = ["KNOWN_SERVICES", "OPTIONAL_SERVICES", "SERVICES", "ServiceStatus", "StackError", "down", "status", "up"]

SERVICES = ("postgres", "redis", "kafka", "elasticsearch")
"""What the application and the test suite need, in start order; ``down`` stops in reverse."""
OPTIONAL_SERVICES = ("prometheus",)
"""Started only when named (``up(settings, ["prometheus"])``); nothing the tests need."""
KNOWN_SERVICES = SERVICES + OPTIONAL_SERVICES

_SERVICE_TYPES: dict[str, type[Service]] = {
    "postgres": Postgres,
    "redis": Redis,
    "kafka": KafkaBroker,
    "elasticsearch": Elasticsearch,
    "prometheus": Prometheus,
}
# Servers running as other users (postgres, elasticsearch) must be able to enter it.
STATE_DIR_MODE = 0o755
LOCK_FILE = ".lock"


def _selected(services: Sequence[str] | None, default: Sequence[str] = SERVICES) -> list[str]:
    if services is None:
        return list(default)
    unknown = sorted(set(services) - set(KNOWN_SERVICES))
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {', '.join(KNOWN_SERVICES)}")
    return [name for name in KNOWN_SERVICES if name in services]


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """Serialise up/down across processes (e.g. parallel test workers) on this state dir."""
    state_dir = settings.state_dir
    if not state_dir.exists():
        state_dir.mkdir(parents=True)
        state_dir.chmod(STATE_DIR_MODE)
    with (state_dir / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(settings: Settings, services: Sequence[str] | None = None) -> None:
    """Install what is missing, start, and wait until healthy; fast when already up. All of
    ``SERVICES`` by default; an optional service only when named."""
    names = _selected(services)
    with _exclusive(settings):
        for name in names:
            _SERVICE_TYPES[name](settings).up()


def down(settings: Settings, services: Sequence[str] | None = None) -> None:
    """Stop gracefully in reverse start order and wait until stopped; no-op when stopped. All
    known services by default, the optional ones included."""
    names = _selected(services, KNOWN_SERVICES)
    with _exclusive(settings):
        for name in reversed(names):
            _SERVICE_TYPES[name](settings).down()


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """The named services' status; by default ``SERVICES`` and the optional ones that run (one
    not started is not "down": the test suite and ``damai stack status`` need only ``SERVICES``)."""
    if services is not None:
        return [_SERVICE_TYPES[name](settings).status() for name in _selected(services)]
    optional = [_SERVICE_TYPES[name](settings) for name in OPTIONAL_SERVICES]
    running = [service.status() for service in optional if service.running_pid() is not None]
    return [_SERVICE_TYPES[name](settings).status() for name in SERVICES] + running
