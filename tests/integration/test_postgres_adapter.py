import uuid

from prometheus_client import REGISTRY

from infra.postgres.migrations import load_migrations, migrate_all, verify_all
from infra.postgres.pools import ShardPools
from infra.postgres.routing import GROUP_OF_FAMILY, shard_layout
from projections.batch import Delivered, Positioned
from projections.offsets import applied_offsets, take_unapplied


async def test_every_shard_database_answers(pools: ShardPools, settings):
    assert pools.databases == settings.postgres.databases
    for database, pool in pools:
        assert await pool.fetchval("SELECT current_database()") == database


async def test_migrations_are_recorded_and_rerunning_applies_nothing(pools: ShardPools, isolated):
    layout = shard_layout(isolated)
    await migrate_all(pools, layout)

    again = await migrate_all(pools, layout)

    assert all(applied == [] for applied in again.values())
    assert (await verify_all(pools, layout)).ok


async def test_migrating_a_fresh_schema_creates_every_physical_table(settings):
    fresh = settings.namespaced(f"m{uuid.uuid4().hex[:10]}")
    layout = shard_layout(fresh)
    pools = ShardPools(fresh.postgres)
    await pools.start()
    try:
        before = await verify_all(pools, layout)
        await migrate_all(pools, layout)
        after = await verify_all(pools, layout)
        tables = {db: await _tables(pool, fresh.postgres.schema_name) for db, pool in pools}
    finally:
        for _, pool in pools:
            await pool.execute(f'DROP SCHEMA IF EXISTS "{fresh.postgres.schema_name}" CASCADE')
        await pools.stop()

    assert not before.ok
    assert after.ok
    for family in ("order", "order_ticket", "user", "user_mobile", "seat", "pay_bill", "refund_bill"):
        for shard in layout.physical_tables(family):
            assert shard.table in tables[shard.database]
    assert tables["damai_0"] >= {"order_0", "order_3", "area", "category", "projector_offset", "schema_migration"}
    assert "order_4" not in tables["damai_0"] and "order_4" in tables["damai_1"]


async def test_growing_the_layout_creates_only_the_new_tables(settings):
    fresh = settings.namespaced(f"m{uuid.uuid4().hex[:10]}")
    grown_settings = fresh.postgres.model_copy(
        update={"tables_per_database": {**fresh.postgres.tables_per_database, "order": 8}}
    )
    pools = ShardPools(fresh.postgres)
    await pools.start()
    try:
        await migrate_all(pools, shard_layout(fresh))
        grown = fresh.model_copy(update={"postgres": grown_settings})
        applied = await migrate_all(pools, shard_layout(grown))
        verified = await verify_all(pools, shard_layout(grown))
    finally:
        for _, pool in pools:
            await pool.execute(f'DROP SCHEMA IF EXISTS "{fresh.postgres.schema_name}" CASCADE')
        await pools.stop()

    # Every migration of the order group runs for the new slots, and nothing else does.
    order_migrations = [m.name for m in load_migrations() if m.shard_group == GROUP_OF_FAMILY["order"]]
    assert applied["damai_0"] == [f"{m}[{slot}]" for m in order_migrations for slot in range(4, 8)]
    # Slots 4-7 now belong to damai_0; damai_1 holds 8-15. Moving rows is a resharding job.
    assert applied["damai_1"] == [f"{m}[{slot}]" for m in order_migrations for slot in range(8, 16)]
    assert verified.ok


async def _tables(pool, schema: str) -> set[str]:
    return {r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}


def _records(topic: str, partition: int, offsets: range) -> list[Positioned[str]]:
    return [Positioned(Delivered(topic, partition, o), f"event-{o}") for o in offsets]


async def test_redelivered_records_are_not_taken_twice(pools: ShardPools, area_code: int):
    projector = f"test-offsets-{area_code}"
    pool = pools[pools.databases[0]]

    async with pool.acquire() as conn, conn.transaction():
        first = await take_unapplied(conn, projector, _records("t", 0, range(0, 5)) + _records("t", 1, range(0, 2)))
    async with pool.acquire() as conn, conn.transaction():
        again = await take_unapplied(conn, projector, _records("t", 0, range(3, 8)))
    async with pool.acquire() as conn:
        stored = await applied_offsets(conn, projector)

    assert [r.item for r in first] == [f"event-{o}" for o in range(5)] + ["event-0", "event-1"]
    assert [r.item for r in again] == ["event-5", "event-6", "event-7"]
    assert stored == {("t", 0): 7, ("t", 1): 1}


async def test_offsets_roll_back_with_the_projection(pools: ShardPools, area_code: int):
    projector = f"test-rollback-{area_code}"
    pool = pools[pools.databases[0]]

    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await take_unapplied(conn, projector, _records("t", 0, range(0, 3)))
                raise RuntimeError("the projection's own write failed")
        except RuntimeError:
            pass
        async with conn.transaction():
            retaken = await take_unapplied(conn, projector, _records("t", 0, range(0, 3)))

    assert len(retaken) == 3


async def test_a_batch_that_skips_offsets_is_reported_as_a_gap(pools: ShardPools, area_code: int):
    projector = f"test-gap-{area_code}"
    pool = pools[pools.databases[0]]

    def gaps() -> float:
        return REGISTRY.get_sample_value("damai_projector_gaps_total", {"projector": projector}) or 0.0

    async with pool.acquire() as conn, conn.transaction():
        await take_unapplied(conn, projector, _records("t", 0, range(0, 3)))
    before = gaps()
    async with pool.acquire() as conn, conn.transaction():
        await take_unapplied(conn, projector, _records("t", 0, range(3, 5)))  # the next offsets: no gap
    after_contiguous = gaps()
    async with pool.acquire() as conn, conn.transaction():
        taken = await take_unapplied(conn, projector, _records("t", 0, range(9, 11)))  # 5..8 never seen

    assert after_contiguous == before
    assert gaps() == before + 1
    assert [r.item for r in taken] == ["event-9", "event-10"]  # still applied: nothing can refetch 5..8
