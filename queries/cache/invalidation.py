"""Dropping a changed program's detail everywhere: Redis at once, each process's memory via a Redis Stream.

A stream rather than PUB/SUB: a listener that reconnects resumes after the last entry it
saw, and one that may have missed entries (Redis unreachable) clears its whole local copy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

import structlog
from redis.asyncio import Redis

from infra.background import cancel_and_wait
from infra.redis import REDIS_ERRORS, blocking_client
from infra.settings import Settings
from queries.cache.keys import ProgramCacheKeys

log = structlog.get_logger(__name__)

PROGRAM_FIELD = b"program_id"
STREAM_START = "0-0"
# A server that hangs mid-XREAD shows up as asyncio's timeout (see _read).
FOLLOW_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, TimeoutError)


async def invalidate_program(redis: Redis, settings: Settings, program_id: int) -> None:
    """Drop the cached detail of ``program_id``: from Redis now, from every process's memory within
    a moment. Call it after the change is committed in Postgres."""
    cache = settings.program_cache
    keys = ProgramCacheKeys(cache)
    async with redis.pipeline(transaction=False) as pipe:
        # Deleting the load lock too stops a load that read the old rows from storing them.
        pipe.delete(keys.detail(program_id), keys.load_lock(program_id))
        pipe.xadd(
            keys.invalidations,
            {PROGRAM_FIELD: str(program_id)},
            maxlen=cache.invalidation_stream_maxlen,
            approximate=True,
        )
        await pipe.execute()


class InvalidationListener:
    """Follows the invalidation stream (XREAD BLOCK on a client of its own) in a background task."""

    def __init__(self, settings: Settings, on_program: Callable[[int], None], on_gap: Callable[[], None]):
        self._redis_settings = settings.redis
        self._config = settings.program_cache
        self._stream = ProgramCacheKeys(settings.program_cache).invalidations
        self._on_program = on_program
        self._on_gap = on_gap
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_id: bytes | str | None = None

    async def start(self) -> None:
        """Begin after the stream's newest entry; entries added from now on are seen."""
        self._client = blocking_client(self._redis_settings, retries=self._config.redis_retries)
        try:
            self._last_id = await self._newest_id(self._client)
        except REDIS_ERRORS as exc:
            log.warning("cache.invalidations_unreachable", error=repr(exc))
        self._task = asyncio.create_task(self._follow(self._client), name="program-detail-invalidations")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._client is not None:
            await self._client.aclose()

    async def _follow(self, client: Redis) -> None:
        while True:
            try:
                if self._last_id is None:
                    self._last_id = await self._newest_id(client)
                    self._on_gap()  # entries may have come and gone while Redis was out of reach
                await self._read(client)
            except FOLLOW_ERRORS as exc:
                log.warning("cache.invalidations_unreachable", error=repr(exc))
                self._last_id = None
                await asyncio.sleep(self._config.invalidation_retry_s)

    async def _read(self, client: Redis) -> None:
        assert self._last_id is not None
        # No socket timeout on this client (BLOCK must not be cut short); a hung server is caught
        # here (asyncio.timeout rather than wait_for, which on 3.11 drops a cancel that lands as
        # the reply arrives).
        async with asyncio.timeout(self._config.invalidation_block_ms / 1000 + self._redis_settings.socket_timeout_s):
            reply = await client.xread(
                {self._stream: self._last_id},
                count=self._config.invalidation_read_count,
                block=self._config.invalidation_block_ms,
            )
        for entry_id, fields in _entries(reply):
            self._last_id = entry_id
            raw = fields.get(PROGRAM_FIELD)
            if raw is None or not raw.isdigit():
                log.warning("cache.invalidation_ignored", entry=entry_id, fields=repr(fields))
                continue
            self._on_program(int(raw))

    async def _newest_id(self, client: Redis) -> bytes | str:
        newest = await client.xrevrange(self._stream, count=1)
        if not newest:
            return STREAM_START
        return cast(bytes, newest[0][0])


def _entries(reply: Any) -> Iterable[tuple[bytes, dict[bytes, bytes]]]:
    """(id, fields) of an XREAD reply, in RESP2 (a list of [stream, entries]) or RESP3 (a map) form."""
    if not reply:
        return
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply)
    for entries in streams:
        for entry in entries:
            yield entry[0], dict(entry[1])
