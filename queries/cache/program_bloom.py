"""The Bloom filter of existing program ids: a "no" answers 404 without touching Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis

from infra.postgres.sharded import ShardedDatabase
from infra.settings import ProgramCacheSettings, Settings
from queries.cache.bloom import BloomFilter, BloomKeys, BloomShape
from queries.cache.keys import ProgramCacheKeys
from queries.views.programs import full_route_program_ids

log = structlog.get_logger(__name__)


def program_bloom(redis: Redis, settings: ProgramCacheSettings) -> BloomFilter:
    keys = ProgramCacheKeys(settings)
    return BloomFilter(
        redis,
        BloomShape(settings.bloom_bits, settings.bloom_hashes),
        BloomKeys(keys.bloom, keys.bloom_building, keys.bloom_builder),
    )


def program_member(program_id: int) -> bytes:
    return program_id.to_bytes(8, "big")


async def add_program_to_bloom(redis: Redis, settings: Settings, program_id: int) -> None:
    """Record that ``program_id`` exists. Call it after the program's row is committed,
    including on redelivered events (it is idempotent)."""
    await program_bloom(redis, settings.program_cache).add(program_member(program_id))


async def rebuild_program_bloom(redis: Redis, settings: Settings, db: ShardedDatabase) -> int | None:
    """Add every program in Postgres (a full route) and make the filter live.

    Returns how many ids were added, or None when another process is building it now.
    Bits already in the live filter are kept, so programs projected meanwhile stay present.
    """
    cache = settings.program_cache

    async def ids() -> AsyncIterator[list[bytes]]:
        async for table_ids in full_route_program_ids(db):
            yield [program_member(i) for i in table_ids]

    added = await program_bloom(redis, cache).build(ids(), cache.bloom_build_batch, cache.bloom_build_ttl_s * 1000)
    log.info("cache.program_bloom_built", programs=added, bits=cache.bloom_bits, hashes=cache.bloom_hashes)
    return added


async def ensure_program_bloom(redis: Redis, settings: Settings, db: ShardedDatabase) -> bool:
    """Build the filter when there is none (first start, a flushed Redis, a new size); True when built here."""
    if await program_bloom(redis, settings.program_cache).exists():
        return False
    return await rebuild_program_bloom(redis, settings, db) is not None
