"""Leaves a store alone for a while after it fails, so an outage costs one failed call per
interval instead of one per request. The read side uses it wherever it can do without a store:
the caches without Redis (they go to Postgres), search without Elasticsearch (it falls back to
Postgres)."""

from __future__ import annotations

import time

import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)


class Breaker:
    """Closed (calls go through) until ``trip``; then open for ``retry_after_s``, and closed again."""

    def __init__(self, store: str, retry_after_s: float, failures: Counter | None = None):
        """``failures``, if given, counts every failure tripped on."""
        self._store = store
        self._retry_after_s = retry_after_s
        self._failures = failures
        self._open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self, exc: BaseException) -> None:
        """``exc`` says the store cannot answer now: leave it alone for ``retry_after_s``."""
        if self._failures is not None:
            self._failures.inc()
        if self.allows():
            log.warning("store.unavailable", store=self._store, error=repr(exc), retry_after_s=self._retry_after_s)
        self._open_until = time.monotonic() + self._retry_after_s
