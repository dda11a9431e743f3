"""Program details read through three layers: this process's memory, Redis, Postgres.

- One load per program at a time: in a process, concurrent misses share one call
  (single-flight); across processes, a short Redis lock lets one of them load while the
  others poll Redis for its result (and load themselves only if it never comes).
- Ids that do not exist are answered by the Bloom filter of existing ids or by a cached miss
  (``null`` in Redis, a marker in memory), both without touching Postgres.
- Redis TTLs get random jitter, so details loaded together do not expire together.
- A load that overlaps an invalidation stores nothing: not in Redis (the invalidation took
  its lock) and not in memory (the invalidation took its ticket).
- When Redis fails, the cache answers from Postgres and leaves Redis alone for a while.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
import uuid
from collections.abc import Mapping
from typing import cast

import structlog
from redis.asyncio import Redis

from infra.background import cancel_and_wait
from infra.metrics import (
    CACHE_HITS,
    CACHE_INVALIDATIONS,
    CACHE_LOAD_SECONDS,
    CACHE_LOADS,
    CACHE_MISSES,
    CACHE_REDIS_ERRORS,
)
from infra.postgres.sharded import ShardedDatabase
from infra.redis import REDIS_ERRORS, create_redis, lua_script
from infra.settings import ProgramCacheSettings, Settings
from queries.breaker import Breaker
from queries.cache.bloom import BloomFilter, Membership
from queries.cache.invalidation import InvalidationListener
from queries.cache.keys import ProgramCacheKeys
from queries.cache.local import LocalCache
from queries.cache.program_bloom import ensure_program_bloom, program_bloom, program_member
from queries.cache.single_flight import SingleFlight
from queries.detail import (
    ProgramDetail,
    decode_detail,
    encode_detail,
    load_program_detail,
    overlay_remaining,
)

log = structlog.get_logger(__name__)

CACHE = "program_detail"
NOT_FOUND_DOCUMENT = b"null"


class CachedDetail:
    """A visible program's detail as cached: its JSON document, decoded only when asked for."""

    __slots__ = ("_detail", "_live", "raw")

    def __init__(self, raw: bytes, detail: ProgramDetail | None = None):
        self.raw = raw
        self._detail = detail
        self._live: tuple[Mapping[int, int], bytes] | None = None

    def with_remaining(self, remaining: Mapping[int, int] | None) -> bytes:
        """The document with live remaining counts; the last one made is reused while the counts are equal."""
        if not remaining:
            return self.raw
        live = self._live
        if live is None or live[0] != remaining:
            live = self._live = (remaining, overlay_remaining(self.raw, remaining))
        return live[1]

    @property
    def detail(self) -> ProgramDetail:
        if self._detail is None:
            self._detail = decode_detail(self.raw)
        return self._detail


class _Missing(enum.Enum):
    MISSING = "missing"


MISSING = _Missing.MISSING


def detail_ttl_ms(settings: ProgramCacheSettings, found: bool) -> int:
    """Redis TTL of a loaded entry: base plus random jitter for a detail, fixed for a miss."""
    if not found:
        return settings.redis_negative_ttl_s * 1000
    return settings.redis_ttl_s * 1000 + random.randint(0, settings.redis_ttl_jitter_s * 1000)


class ProgramDetailCache:
    def __init__(self, redis: Redis, db: ShardedDatabase, settings: Settings):
        self._redis = redis
        self._db = db
        self._settings = settings
        self._config = settings.program_cache
        self._keys = ProgramCacheKeys(self._config)
        self._local: LocalCache[int, CachedDetail | _Missing] = LocalCache(self._config.local_max_entries)
        self._flight: SingleFlight[int, CachedDetail | None] = SingleFlight()
        # The fetch whose result may still be kept in memory, per program; an invalidation revokes it.
        self._tickets: dict[int, object] = {}
        self._breaker = Breaker(
            f"redis ({CACHE})", self._config.redis_retry_after_s, CACHE_REDIS_ERRORS.labels(CACHE)
        )
        self._bloom: BloomFilter = program_bloom(redis, self._config)
        self._fill = lua_script(redis, "cache_fill")
        self._listener: InvalidationListener | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._owns_redis = False
        # Loads from Postgres by this instance; damai_cache_loads_total counts them per process.
        self.loads = 0
        self._counted = {
            (layer, kind): CACHE_HITS.labels(CACHE, layer, kind)
            for layer in ("local", "redis", "bloom")
            for kind in ("found", "missing")
        }
        self._local_misses = CACHE_MISSES.labels(CACHE, "local")
        self._redis_misses = CACHE_MISSES.labels(CACHE, "redis")

    @classmethod
    def open(cls, db: ShardedDatabase, settings: Settings) -> ProgramDetailCache:
        """A cache with a Redis client of its own that fails fast, closed by ``stop``."""
        cache = cls(create_redis(settings.redis, retries=settings.program_cache.redis_retries), db, settings)
        cache._owns_redis = True
        return cache

    async def start(self) -> None:
        """Follow the invalidation stream; build the Bloom filter in the background if there is none."""
        self._listener = InvalidationListener(self._settings, on_program=self.drop_local, on_gap=self.clear_local)
        await self._listener.start()
        if self._config.bloom_build_at_start:
            task = asyncio.create_task(self._ensure_bloom(), name="program-bloom-build")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        await asyncio.gather(*(cancel_and_wait(task) for task in list(self._background)))
        if self._listener is not None:
            await self._listener.stop()
        if self._owns_redis:
            await self._redis.aclose()

    async def get(self, program_id: int) -> CachedDetail | None:
        """The detail of a visible program, or None when there is no such program (or it is a draft)."""
        if self._config.local_enabled:
            held = self._local.get(program_id)
            if held is MISSING:
                self._counted["local", "missing"].inc()
                return None
            if held is not None:
                self._counted["local", "found"].inc()
                return held
            self._local_misses.inc()
        return await self._flight.do(program_id, lambda: self._fetch(program_id))

    def drop_local(self, program_id: int) -> None:
        """Forget this process's copy; the next get reads Redis (or Postgres) again."""
        CACHE_INVALIDATIONS.labels(CACHE).inc()
        self._local.drop(program_id)
        self._flight.forget(program_id)
        self._tickets.pop(program_id, None)

    def clear_local(self) -> None:
        self._local.clear()
        self._flight.forget_all()
        self._tickets.clear()

    def holds_locally(self, program_id: int) -> bool:
        return self._local.get(program_id) is not None

    async def _fetch(self, program_id: int) -> CachedDetail | None:
        ticket = object()
        self._tickets[program_id] = ticket
        try:
            found = await self._beyond_memory(program_id)
        finally:
            still_current = self._tickets.get(program_id) is ticket
            if still_current:
                del self._tickets[program_id]
        if still_current and self._config.local_enabled:
            ttl = self._config.local_ttl_s if found is not None else self._config.local_negative_ttl_s
            self._local.put(program_id, MISSING if found is None else found, ttl)
        return found

    async def _beyond_memory(self, program_id: int) -> CachedDetail | None:
        if not self._breaker.allows():
            return await self._load(program_id)
        try:
            # The Bloom filter only on a miss: a lone GET costs half a three-command pipeline.
            raw = cast(bytes | None, await self._redis.get(self._keys.detail(program_id)))
            if raw is not None:
                return self._from_redis(raw)
            self._redis_misses.inc()
            membership = await self._bloom.check(program_member(program_id))
        except REDIS_ERRORS as exc:
            self._breaker.trip(exc)
            return await self._load(program_id)
        if membership is Membership.ABSENT:
            self._counted["bloom", "missing"].inc()
            return None
        return await self._load_once_across_processes(program_id)

    async def _load_once_across_processes(self, program_id: int) -> CachedDetail | None:
        lock, key = self._keys.load_lock(program_id), self._keys.detail(program_id)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._config.load_wait_s
        while True:
            try:
                locked = await self._redis.set(lock, token, nx=True, px=self._config.load_lock_ttl_ms)
            except REDIS_ERRORS as exc:
                self._breaker.trip(exc)
                return await self._load(program_id)
            if locked:
                found = await self._load(program_id)
                await self._store(program_id, token, found)
                return found
            if time.monotonic() >= deadline:
                log.info("cache.load_wait_expired", cache=CACHE, program_id=program_id)
                return await self._load(program_id)
            await asyncio.sleep(self._config.load_poll_s)
            try:
                raw = cast(bytes | None, await self._redis.get(key))
            except REDIS_ERRORS as exc:
                self._breaker.trip(exc)
                return await self._load(program_id)
            if raw is not None:
                return self._from_redis(raw)

    async def _load(self, program_id: int) -> CachedDetail | None:
        self.loads += 1
        started = time.perf_counter()
        detail = await load_program_detail(self._db, program_id)
        CACHE_LOAD_SECONDS.labels(CACHE).observe(time.perf_counter() - started)
        CACHE_LOADS.labels(CACHE, "found" if detail is not None else "missing").inc()
        return CachedDetail(encode_detail(detail), detail) if detail is not None else None

    async def _store(self, program_id: int, token: str, found: CachedDetail | None) -> None:
        raw = found.raw if found is not None else NOT_FOUND_DOCUMENT
        ttl_ms = detail_ttl_ms(self._config, found is not None)
        try:
            await self._fill(
                keys=[self._keys.load_lock(program_id), self._keys.detail(program_id)], args=[token, raw, ttl_ms]
            )
        except REDIS_ERRORS as exc:
            self._breaker.trip(exc)

    def _from_redis(self, raw: bytes) -> CachedDetail | None:
        if raw == NOT_FOUND_DOCUMENT:
            self._counted["redis", "missing"].inc()
            return None
        self._counted["redis", "found"].inc()
        return CachedDetail(raw)

    async def _ensure_bloom(self) -> None:
        try:
            await ensure_program_bloom(self._redis, self._settings, self._db)
        except Exception as exc:  # noqa: BLE001 — without a filter, unknown ids fall back to the negative cache
            log.warning("cache.program_bloom_not_built", error=repr(exc))
