"""The Bloom filter of existing program ids in real Redis, built from real Postgres shards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis

from infra.settings import Settings
from queries.cache import add_program_to_bloom, rebuild_program_bloom
from queries.cache.bloom import Membership
from queries.cache.program_bloom import program_bloom, program_member
from queries.views.programs import full_route_program_ids
from tests.program_rows import insert_program, next_id


@pytest.fixture
def cache_settings(isolated: Settings) -> Settings:
    return isolated.model_copy(
        update={"program_cache": isolated.program_cache.model_copy(update={"bloom_bits": 1 << 16})}
    )


async def _membership(redis: Redis, settings: Settings, program_id: int) -> Membership:
    return await program_bloom(redis, settings.program_cache).check(program_member(program_id))


async def test_full_route_reads_every_program_table_when_collecting_program_ids(db):
    sharded, queries = db
    inserted = {(await insert_program(sharded)).id for _ in range(6)}
    queries.clear()

    found = [i async for table_ids in full_route_program_ids(sharded) for i in table_ids]

    assert sorted(found) == sorted(inserted)
    tables = {s.table for s in sharded.layout.physical_tables("program")}
    assert {query.split("FROM ")[1].split()[0] for _, query in queries} == tables


async def test_filter_answers_unknown_when_it_was_never_built(redis: Redis, cache_settings: Settings):
    program_id = next_id()

    await add_program_to_bloom(redis, cache_settings, program_id)

    assert await _membership(redis, cache_settings, program_id) is Membership.UNKNOWN


async def test_rebuilt_filter_holds_every_program_and_rejects_other_ids_when_built_from_postgres(
    db, redis: Redis, cache_settings: Settings
):
    sharded, _ = db
    programs = [await insert_program(sharded) for _ in range(3)]

    added = await rebuild_program_bloom(redis, cache_settings, sharded)

    assert added == 3
    assert [await _membership(redis, cache_settings, p.id) for p in programs] == [Membership.MAYBE_PRESENT] * 3
    others = {await _membership(redis, cache_settings, next_id()) for _ in range(50)}
    assert others == {Membership.ABSENT}


async def test_added_program_is_present_when_the_filter_exists(db, redis: Redis, cache_settings: Settings):
    sharded, _ = db
    await rebuild_program_bloom(redis, cache_settings, sharded)
    program_id = next_id()

    await add_program_to_bloom(redis, cache_settings, program_id)

    assert await _membership(redis, cache_settings, program_id) is Membership.MAYBE_PRESENT


async def test_program_added_during_a_build_is_present_when_the_build_finishes(redis: Redis, cache_settings: Settings):
    config = cache_settings.program_cache
    added_meanwhile = next_id()

    async def members() -> AsyncIterator[Sequence[bytes]]:
        yield [program_member(next_id())]
        await add_program_to_bloom(redis, cache_settings, added_meanwhile)  # projected mid-build
        yield [program_member(next_id())]

    await program_bloom(redis, config).build(members(), config.bloom_build_batch, 10_000)

    assert await _membership(redis, cache_settings, added_meanwhile) is Membership.MAYBE_PRESENT


async def test_rebuild_keeps_ids_of_the_live_filter_when_one_exists(db, redis: Redis, cache_settings: Settings):
    sharded, _ = db
    await rebuild_program_bloom(redis, cache_settings, sharded)
    not_yet_in_postgres = next_id()
    await add_program_to_bloom(redis, cache_settings, not_yet_in_postgres)

    await rebuild_program_bloom(redis, cache_settings, sharded)

    assert await _membership(redis, cache_settings, not_yet_in_postgres) is Membership.MAYBE_PRESENT


async def test_second_build_is_refused_when_one_is_under_way(db, redis: Redis, cache_settings: Settings):
    sharded, _ = db
    config = cache_settings.program_cache
    release = asyncio.Event()

    async def slow_members() -> AsyncIterator[Sequence[bytes]]:
        await release.wait()
        yield [program_member(next_id())]

    first = asyncio.create_task(program_bloom(redis, config).build(slow_members(), config.bloom_build_batch, 10_000))
    await asyncio.sleep(0.1)

    second = await rebuild_program_bloom(redis, cache_settings, sharded)
    release.set()

    assert second is None
    assert await first == 1
