"""Skips Redis for a while after it fails, so an outage costs one error, not one per request."""

from __future__ import annotations

import time

import structlog

from infra.metrics import CACHE_REDIS_ERRORS

log = structlog.get_logger(__name__)


class RedisBreaker:
    def __init__(self, cache: str, retry_after_s: float):
        self._cache = cache
        self._retry_after_s = retry_after_s
        self._open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def trip(self, exc: BaseException) -> None:
        CACHE_REDIS_ERRORS.labels(self._cache).inc()
        if self.allows():
            log.warning(
                "cache.redis_unavailable", cache=self._cache, error=repr(exc), retry_after_s=self._retry_after_s
            )
        self._open_until = time.monotonic() + self._retry_after_s
