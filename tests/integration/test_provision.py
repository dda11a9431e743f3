"""Removing a namespace takes its programs' Redis keys with it, and nobody else's."""

from __future__ import annotations

from cli.provision import provision_namespace, remove_namespace
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import program_keys_pattern, remaining_counts
from tests.conftest import isolated_copy
from tests.program_rows import insert_program, next_id


async def test_removing_a_namespace_removes_its_programs_keys_only(settings, redis):
    namespace = isolated_copy(settings)
    await provision_namespace(namespace)
    try:
        pools = ShardPools(namespace.postgres)
        await pools.start()
        try:
            ours = await insert_program(ShardedDatabase(pools, shard_layout(namespace)))
        finally:
            await pools.stop()
        someone_elses = next_id()
        await redis.hset(remaining_counts(ours.id), "1", 10)
        await redis.hset(remaining_counts(someone_elses), "1", 10)
    finally:
        await remove_namespace(namespace)

    try:
        assert [k async for k in redis.scan_iter(match=program_keys_pattern(ours.id))] == []
        assert await redis.exists(remaining_counts(someone_elses)) == 1
    finally:
        await redis.delete(remaining_counts(someone_elses))
