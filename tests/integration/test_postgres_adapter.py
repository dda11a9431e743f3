from infra.postgres.migrations import load_migrations, migrate_all, migrate_database
from infra.postgres.offsets import Delivered, Positioned, applied_offsets, take_unapplied
from infra.postgres.pools import ShardPools


async def test_every_shard_database_answers(pools: ShardPools, settings):
    assert pools.databases == settings.postgres.databases
    for database, pool in pools:
        assert await pool.fetchval("SELECT current_database()") == database


async def test_migrations_are_recorded_and_rerunning_applies_nothing(pools: ShardPools):
    await migrate_all(pools)

    again = await migrate_all(pools)

    assert all(applied == [] for applied in again.values())
    names = [m.name for m in load_migrations()]
    for _, pool in pools:
        recorded = [r["name"] for r in await pool.fetch("SELECT name FROM schema_migration ORDER BY name")]
        assert recorded == names
        assert await pool.fetchval("SELECT to_regclass('public.area') IS NOT NULL")


async def test_migrating_a_fresh_database_creates_every_table(pools: ShardPools):
    pool = pools[pools.databases[0]]
    async with pool.acquire() as conn:
        try:
            applied = await migrate_database(conn, load_migrations(), "migration_probe")
            tables = {
                r["tablename"]
                for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'migration_probe'")
            }
        finally:
            await conn.execute("DROP SCHEMA IF EXISTS migration_probe CASCADE")

    assert applied == [m.name for m in load_migrations()]
    assert {"schema_migration", "projector_offset", "area"} <= tables


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
