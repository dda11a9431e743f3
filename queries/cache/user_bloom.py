"""The registration Bloom filter: the blind indexes of every mobile and email in use, in one filter.

"Is this mobile (email) registered" asks it first; ABSENT is certain, MAYBE_PRESENT is checked
against the lookup table (ADR 0007). A mobile's blind index and an email's are HMACs of different
kinds, so the two never collide in one filter. It is a hint, never the rule: a claim is decided by
the ownership aggregate, so a stale filter costs a lookup, not a second account.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import user_bloom as user_bloom_key
from infra.settings import UserSettings
from queries.cache.bloom import BloomFilter, BloomKeys, BloomShape
from queries.views.users import full_route_identifier_blinds

log = structlog.get_logger(__name__)


def user_bloom(redis: Redis, settings: UserSettings) -> BloomFilter:
    prefix = settings.key_prefix
    return BloomFilter(
        redis,
        BloomShape(settings.bloom_bits, settings.bloom_hashes),
        BloomKeys(
            user_bloom_key(prefix, "live"), user_bloom_key(prefix, "building"), user_bloom_key(prefix, "builder")
        ),
    )


async def add_identifiers_to_bloom(redis: Redis, settings: UserSettings, blinds: Sequence[bytes]) -> None:
    """Record that these mobiles and emails (their 32-byte blind indexes) are in use. Call it after
    their claims are committed, including on redelivered events (it is idempotent)."""
    await user_bloom(redis, settings).add_many(blinds)


async def rebuild_user_bloom(redis: Redis, settings: UserSettings, db: ShardedDatabase) -> int | None:
    """Add every mobile and email held in Postgres (a full route) and make the filter live.

    Returns how many were added, or None when another process is building it now. Bits already in
    the live filter are kept, so identifiers claimed meanwhile stay present.
    """
    added = await user_bloom(redis, settings).build(
        full_route_identifier_blinds(db), settings.bloom_build_batch, settings.bloom_build_ttl_s * 1000
    )
    log.info("cache.user_bloom_built", identifiers=added, bits=settings.bloom_bits, hashes=settings.bloom_hashes)
    return added


async def ensure_user_bloom(redis: Redis, settings: UserSettings, db: ShardedDatabase) -> bool:
    """Build the filter when there is none (first start, a flushed Redis); True when built here."""
    if await user_bloom(redis, settings).exists():
        return False
    return await rebuild_user_bloom(redis, settings, db) is not None
