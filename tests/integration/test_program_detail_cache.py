"""The program detail cache against real Redis and Postgres: layers, single loads, misses, invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from infra.redis import lua_script
from infra.settings import Settings
from queries.cache import ProgramDetailCache, invalidate_program, rebuild_program_bloom
from queries.cache.keys import ProgramCacheKeys
from tests.processes import eventually, free_port
from tests.program_rows import STARTS, insert_program, next_id, rename_program

INVALIDATION_BOUND_S = 1.0


@pytest.fixture
def cache_settings(isolated: Settings) -> Settings:
    # A small filter (8 KiB) and no build at start: tests build it when they mean to.
    cache = isolated.program_cache.model_copy(update={"bloom_bits": 1 << 16, "bloom_build_at_start": False})
    return isolated.model_copy(update={"program_cache": cache})


NewCache = Callable[..., Awaitable[ProgramDetailCache]]


@pytest_asyncio.fixture
async def new_cache(redis: Redis, db, cache_settings: Settings) -> AsyncIterator[NewCache]:
    """Cache instances on the test's namespace; each stands for one API process."""
    made: list[ProgramDetailCache] = []

    async def make(settings: Settings | None = None, client: Redis | None = None, started: bool = False):
        cache = ProgramDetailCache(client or redis, db[0], settings or cache_settings)
        if started:
            await cache.start()
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.stop()


def _keys(settings: Settings) -> ProgramCacheKeys:
    return ProgramCacheKeys(settings.program_cache)


async def test_detail_lists_show_times_with_their_ticket_categories_when_the_program_is_on_sale(db, new_cache):
    sharded, _ = db
    program = await insert_program(sharded)
    cache = await new_cache()

    cached = await cache.get(program.id)

    assert cached is not None
    detail = cached.detail
    assert (detail.id, detail.title, detail.venue, detail.status) == (
        program.id,
        "五月天 回到那一天",
        "国家体育场",
        "on_sale",
    )
    assert (detail.per_order_limit, detail.per_account_limit, detail.real_name_required) == (4, 6, True)
    assert detail.notices == ["凭身份证入场", "禁止携带荧光棒"]
    assert detail.refund_policy == {"refundable": True, "deadlineHoursBeforeShow": 48}
    assert [s.id for s in detail.show_times] == program.show_time_ids
    assert detail.show_times[0].starts_at == STARTS
    first = detail.show_times[0].ticket_categories
    assert [(c.name, c.price, c.total, c.remaining) for c in first] == [
        ("看台", Decimal("380.00"), 500, 120),
        ("内场", Decimal("1280.50"), 200, 0),
    ]


async def test_prices_are_strings_with_two_places_and_ids_strings_when_the_detail_is_served(db, new_cache):
    sharded, _ = db
    program = await insert_program(sharded)
    cache = await new_cache()

    cached = await cache.get(program.id)

    assert cached is not None
    document = cached.detail.to_document()
    assert document["id"] == str(program.id)
    assert [c["price"] for c in document["showTimes"][0]["ticketCategories"]] == ["380.00", "1280.50"]
    assert document["showTimes"][0]["ticketCategories"][0]["id"] == str(program.ticket_category_ids[0][0])


async def test_draft_program_is_not_found_when_it_is_not_published(db, new_cache):
    sharded, _ = db
    program = await insert_program(sharded, status="draft")
    cache = await new_cache()

    assert await cache.get(program.id) is None


async def test_two_hundred_concurrent_cold_gets_load_postgres_once_when_nothing_is_cached(db, new_cache):
    sharded, queries = db
    program = await insert_program(sharded)
    cache = await new_cache()
    queries.clear()

    results = await asyncio.gather(*(cache.get(program.id) for _ in range(200)))

    assert cache.loads == 1
    assert len(queries) == 3  # program, show times, ticket categories: one load
    assert all(r is not None and r.raw == results[0].raw for r in results)


async def test_cold_gets_in_two_processes_load_postgres_once_when_they_share_redis(db, new_cache):
    sharded, queries = db
    program = await insert_program(sharded)
    first, second = await new_cache(), await new_cache()
    queries.clear()

    results = await asyncio.gather(*(cache.get(program.id) for cache in (first, second) * 100))

    assert first.loads + second.loads == 1
    assert len(queries) == 3
    assert {r.raw for r in results if r is not None} == {results[0].raw} and None not in results


async def test_cold_get_loads_by_itself_when_another_process_holds_the_load_lock_too_long(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, _ = db
    program = await insert_program(sharded)
    impatient = cache_settings.program_cache.model_copy(update={"load_wait_s": 0.2})
    cache = await new_cache(settings=cache_settings.model_copy(update={"program_cache": impatient}))
    keys = _keys(cache_settings)
    await redis.set(keys.load_lock(program.id), "a-stuck-process", px=10_000)

    cached = await cache.get(program.id)

    assert cached is not None and cached.detail.id == program.id
    assert cache.loads == 1
    assert await redis.exists(keys.detail(program.id)) == 0  # only the lock holder fills Redis


async def test_unknown_id_never_reaches_postgres_when_the_bloom_filter_says_absent(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, queries = db
    await insert_program(sharded)
    assert await rebuild_program_bloom(redis, cache_settings, sharded) == 1
    cache = await new_cache()
    queries.clear()

    answers = [await cache.get(next_id()) for _ in range(20)]

    assert answers == [None] * 20
    assert queries == []
    assert cache.loads == 0


async def test_unknown_id_never_reaches_postgres_again_when_its_miss_is_cached(db, new_cache):
    _, queries = db
    unknown = next_id()
    first = await new_cache()
    assert await first.get(unknown) is None  # no Bloom filter: Postgres says no, once
    queries.clear()
    second = await new_cache()  # another process: nothing in its memory

    answers = [await first.get(unknown), await second.get(unknown)]

    assert answers == [None, None]
    assert queries == []
    assert (first.loads, second.loads) == (1, 0)


async def test_redis_ttl_lies_between_base_and_base_plus_jitter_when_a_detail_is_loaded(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, _ = db
    config = cache_settings.program_cache
    programs = [await insert_program(sharded) for _ in range(5)]
    cache = await new_cache()

    for program in programs:
        await cache.get(program.id)
    ttls = [await redis.pttl(_keys(cache_settings).detail(p.id)) for p in programs]

    slack_ms = 5_000  # time spent between the fill and the PTTL
    assert all(
        config.redis_ttl_s * 1000 - slack_ms <= t <= (config.redis_ttl_s + config.redis_ttl_jitter_s) * 1000
        for t in ttls
    )


async def test_cached_miss_expires_after_the_negative_ttl_when_an_id_is_unknown(
    new_cache, cache_settings: Settings, redis: Redis
):
    unknown = next_id()
    cache = await new_cache()

    await cache.get(unknown)

    ttl = await redis.pttl(_keys(cache_settings).detail(unknown))
    assert 0 < ttl <= cache_settings.program_cache.redis_negative_ttl_s * 1000


async def test_invalidation_drops_redis_and_another_process_copy_within_a_second_when_a_program_changes(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, _ = db
    program = await insert_program(sharded)
    writer, reader = await new_cache(started=True), await new_cache(started=True)
    await writer.get(program.id)
    await reader.get(program.id)
    assert reader.holds_locally(program.id)
    await rename_program(sharded, program.id, "五月天 加场")

    await invalidate_program(redis, cache_settings, program.id)

    assert await redis.exists(_keys(cache_settings).detail(program.id)) == 0

    async def dropped() -> bool:
        return not reader.holds_locally(program.id)

    await eventually(dropped, INVALIDATION_BOUND_S, "the other process to drop its copy")
    fresh = await reader.get(program.id)
    assert fresh is not None and fresh.detail.title == "五月天 加场"


async def test_invalidation_reaches_a_process_when_the_program_was_cached_as_missing(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, _ = db
    program = await insert_program(sharded, status="draft")
    reader = await new_cache(started=True)
    assert await reader.get(program.id) is None
    shard = sharded.layout.program_family("program", program.id)
    await sharded.pools[shard.database].execute(
        f"UPDATE {shard.table} SET status = 'on_sale' WHERE id = $1", program.id
    )

    await invalidate_program(redis, cache_settings, program.id)

    async def published() -> bool:
        return await reader.get(program.id) is not None

    await eventually(published, INVALIDATION_BOUND_S, "the published program to be served")


async def test_load_stores_nothing_when_an_invalidation_comes_while_it_reads_postgres(
    db, new_cache, cache_settings: Settings, redis: Redis
):
    sharded, _ = db
    program = await insert_program(sharded)
    cache = await new_cache()
    shard = sharded.layout.program_family("program", program.id)
    async with sharded.pools[shard.database].acquire() as conn, conn.transaction():
        await conn.execute(f"LOCK TABLE {shard.table} IN ACCESS EXCLUSIVE MODE")  # the load waits here
        load = asyncio.create_task(cache.get(program.id))
        await eventually(lambda: _true_when(cache.loads == 1), 5, "the load to start")
        await invalidate_program(redis, cache_settings, program.id)
        cache.drop_local(program.id)  # what the invalidation listener does on the message

    served = await load

    assert served is not None  # the callers that asked before the change get their answer
    assert not cache.holds_locally(program.id)
    assert await redis.exists(_keys(cache_settings).detail(program.id)) == 0


async def test_fill_is_refused_when_the_load_lock_was_taken_by_an_invalidation(redis: Redis, cache_settings: Settings):
    program_id = next_id()
    keys = _keys(cache_settings)
    await redis.set(keys.load_lock(program_id), "loader-token", px=10_000)
    await invalidate_program(redis, cache_settings, program_id)

    stored = await lua_script(redis, "cache_fill")(
        keys=[keys.load_lock(program_id), keys.detail(program_id)], args=["loader-token", b"{}", 60_000]
    )

    assert stored == 0
    assert await redis.exists(keys.detail(program_id)) == 0


async def test_detail_is_served_from_postgres_when_redis_is_unreachable(db, new_cache, cache_settings: Settings):
    sharded, _ = db
    program = await insert_program(sharded)
    closed_port = cache_settings.redis.model_copy(update={"port": free_port()})
    cache = ProgramDetailCache.open(sharded, cache_settings.model_copy(update={"redis": closed_port}))
    await cache.start()

    try:
        first = await cache.get(program.id)
        second = await cache.get(program.id)
        missing = await cache.get(next_id())
    finally:
        await cache.stop()

    assert first is not None and first.detail.id == program.id
    assert second is first  # kept in memory meanwhile
    assert missing is None
    assert cache.loads == 2


async def test_redis_only_cache_reads_redis_every_time_when_local_memory_is_disabled(
    db, new_cache, cache_settings: Settings
):
    sharded, queries = db
    program = await insert_program(sharded)
    no_memory = cache_settings.program_cache.model_copy(update={"local_enabled": False})
    cache = await new_cache(settings=cache_settings.model_copy(update={"program_cache": no_memory}))
    await cache.get(program.id)
    queries.clear()

    answers = [await cache.get(program.id) for _ in range(5)]

    assert all(a is not None and a.detail.id == program.id for a in answers)
    assert not cache.holds_locally(program.id)
    assert queries == [] and cache.loads == 1


async def _true_when(condition: bool) -> bool:
    return condition
