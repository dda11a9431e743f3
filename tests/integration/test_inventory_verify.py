"""`damai verify inventory`: the Redis seat inventory checked against the layout in Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts
from infra.redis_keys import (
    available_seats,
    program_keys_pattern,
    projector_offsets,
    remaining_counts,
    seat_facts,
    ticket_category_prices,
)
from projections.inventory_projector import InventoryProjector
from projections.program_projector import ProgramProjector
from projections.verify import verify_program_inventory
from queries.views import programs
from tests.integration.test_program_projector import _batch, _events


@pytest_asyncio.fixture
async def projected(isolated, pools, redis, es, area_code) -> AsyncIterator[tuple[ShardedDatabase, int, Any]]:
    """A program projected into Postgres and the Redis inventory: (shards, program id, its inner category)."""
    layout = shard_layout(isolated)
    events = _events(area_code * 100_000)
    program_id = events[0].program_id
    batch = _batch(isolated.kafka.topic("program"), events)
    await ProgramProjector("test.program", pools, layout, redis, isolated, es).apply(batch)
    await InventoryProjector("test.inventory", redis, LuaScripts(redis)).apply(batch)
    db = ShardedDatabase(pools, layout)
    inner = next(c for c in await programs.ticket_categories_of(db, program_id) if c.name == "内场")
    yield db, program_id, inner
    keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
    if keys:
        await redis.delete(*keys)
    await redis.delete(*(projector_offsets(name) for name in ("test.inventory",)))


async def test_a_freshly_projected_inventory_agrees(projected, redis):
    db, program_id, _ = projected

    assert await verify_program_inventory(db, redis, program_id) == []


async def test_every_kind_of_disagreement_is_reported(projected, redis):
    db, program_id, inner = projected
    seat_ids = [int(s) for s in await redis.zrange(available_seats(program_id, inner.id), 0, 2)]
    await redis.hdel(seat_facts(program_id, inner.id), str(seat_ids[0]))  # a seat lost
    await redis.hset(seat_facts(program_id, inner.id), "42", "99:99")  # a seat Postgres never laid out
    await redis.hset(seat_facts(program_id, inner.id), str(seat_ids[1]), "77:1")  # a seat moved
    await redis.hset(ticket_category_prices(program_id), str(inner.id), "1.00")  # a wrong price
    await redis.hincrby(remaining_counts(program_id), str(inner.id), -5)  # a count off its seats

    found = [d.what for d in await verify_program_inventory(db, redis, program_id)]

    assert found == [
        "price 1.00 in Redis, 1355.00 in Postgres",
        f"1 seats of Postgres missing in Redis, e.g. {seat_ids[0]}",
        "1 seats in Redis unknown to Postgres, e.g. 42",
        f"1 seats at another row or column in Redis, e.g. {seat_ids[1]}",
        f"1 available seats without seat facts, e.g. {seat_ids[0]}",
        "remaining count 2395 but 2400 seats available",
    ]


async def test_an_inventory_never_projected_is_reported(projected, redis):
    db, program_id, _ = projected
    await redis.delete(remaining_counts(program_id))

    found = await verify_program_inventory(db, redis, program_id)

    assert {d.what for d in found} == {"no remaining count in Redis (inventory not projected)"}
    assert len(found) == 2  # both ticket categories
