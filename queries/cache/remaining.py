"""Live remaining counts for the detail page: the seat inventory's own counts, read from Redis and
kept in this process's memory for a moment (``remaining_ttl_s``).

The detail document is cached for many seconds and its counts come from Postgres; on a hot sale
the inventory in Redis is the truth, so every detail served overlays the counts read here.
Concurrent requests for one program share a read; when Redis fails, the detail is served with
the counts it has, and Redis is left alone for a while.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from redis.asyncio import Redis

from infra.metrics import CACHE_REDIS_ERRORS
from infra.redis import REDIS_ERRORS, create_redis
from infra.redis_keys import remaining_counts
from infra.settings import Settings
from queries.breaker import Breaker
from queries.cache.micro import MicroCache

CACHE = "remaining_counts"

RemainingByCategory = Mapping[int, int]
"""Ticket category id → tickets still on sale."""


log = structlog.get_logger(__name__)


class RemainingCounts:
    def __init__(self, redis: Redis, settings: Settings):
        config = settings.program_cache
        self._redis = redis
        self._counts: MicroCache[int, RemainingByCategory | None] = MicroCache(
            CACHE, config.remaining_ttl_s, config.local_max_entries
        )
        self._breaker = Breaker(f"redis ({CACHE})", config.redis_retry_after_s, CACHE_REDIS_ERRORS.labels(CACHE))
        self._owns_redis = False

    @classmethod
    def open(cls, settings: Settings) -> RemainingCounts:
        """Counts read through a Redis client of their own that fails fast, closed by ``close``."""
        counts = cls(create_redis(settings.redis, retries=settings.program_cache.redis_retries), settings)
        counts._owns_redis = True
        return counts

    async def close(self) -> None:
        if self._owns_redis:
            await self._redis.aclose()

    async def get(self, program_id: int) -> RemainingByCategory | None:
        """The program's counts, at most ``remaining_ttl_s`` old; None when Redis cannot say."""
        return await self._counts.get(program_id, lambda: self._read(program_id))

    async def _read(self, program_id: int) -> RemainingByCategory | None:
        if not self._breaker.allows():
            return None
        try:
            raw = await self._redis.hgetall(remaining_counts(program_id))
        except REDIS_ERRORS as exc:
            self._breaker.trip(exc)
            return None
        counts = {}
        for category, count in raw.items():
            try:
                counts[int(category)] = int(count)
            except ValueError:
                # Not a count the inventory script writes (it refuses other notations): the detail
                # shows the category's projected count, and `damai verify inventory` reports it.
                log.warning("remaining.unreadable_count", program_id=program_id, category=category, count=count)
        return counts
