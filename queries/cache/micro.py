"""Short-lived answers of an expensive read, shared by identical requests ("micro-caching").

During an on-sale thousands of buyers ask for the same search and home pages within a second;
one query answers all of them. Concurrent identical requests always share one load; with a TTL
the answer is also reused for that long. A failed load, or one that answers None ("cannot say
now"), is not kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from infra.metrics import CACHE_HITS, CACHE_MISSES
from queries.cache.local import LocalCache
from queries.cache.single_flight import SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class MicroCache(Generic[K, V]):
    def __init__(self, name: str, ttl_s: float, max_entries: int):
        self._ttl_s = ttl_s
        self._local: LocalCache[K, V] = LocalCache(max_entries)
        self._flight: SingleFlight[K, V] = SingleFlight()
        self._hits = CACHE_HITS.labels(name, "local", "found")
        self._misses = CACHE_MISSES.labels(name, "local")

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The answer for ``key``: kept, being loaded by another request, or loaded now."""
        held = self._local.get(key)
        if held is not None:
            self._hits.inc()
            return held
        self._misses.inc()
        return await self._flight.do(key, lambda: self._load(key, load))

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        if value is not None and self._ttl_s > 0:
            self._local.put(key, value, self._ttl_s)
        return value
