"""A value the seat inventory should never hold is reported by `damai verify inventory`, never a
traceback; and the inventory script refuses a count it would store as something else."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from redis.exceptions import ResponseError

from infra.redis import LuaScripts
from infra.redis_keys import (
    available_seats,
    inventory_applied,
    remaining_counts,
    seat_facts,
    ticket_category_price_versions,
    ticket_category_prices,
)
from projections.verify import verify_program_inventory
from tests.integration.test_inventory_verify import projected

__all__ = ["projected"]

FLOAT_COUNT = b"9.2233720368547758e+18"
VERIFY_TIMEOUT_S = 120


async def test_remaining_count_that_is_not_a_whole_number_is_reported(projected, redis):
    db, program_id, inner = projected
    await redis.hset(remaining_counts(program_id), str(inner.id), FLOAT_COUNT)

    found = [d.what for d in await verify_program_inventory(db, redis, program_id) if d.ticket_category_id == inner.id]

    assert found == ["remaining count 9.2233720368547758e+18 in Redis is not a whole number"]


async def test_price_and_seat_facts_the_inventory_cannot_hold_are_reported(projected, redis):
    db, program_id, inner = projected
    seat_id = (await redis.zrange(available_seats(program_id, inner.id), 0, 0))[0].decode()
    await redis.hset(ticket_category_prices(program_id), str(inner.id), "sNaN")
    await redis.hset(seat_facts(program_id, inner.id), seat_id, "row seven")

    found = [d.what for d in await verify_program_inventory(db, redis, program_id) if d.ticket_category_id == inner.id]

    assert found == [
        "price sNaN in Redis, 1355.00 in Postgres",
        f"1 seat facts in Redis not of a seat id and row:column, e.g. {seat_id} -> row seven",
        f"1 seats of Postgres missing in Redis, e.g. {seat_id}",
        f"1 available seats without seat facts, e.g. {seat_id}",
    ]


async def test_verify_command_reports_an_unreadable_inventory_and_exits_1_when_a_count_is_a_float(
    projected, redis, isolated
):
    _, program_id, inner = projected
    await redis.hset(remaining_counts(program_id), str(inner.id), FLOAT_COUNT)

    verify = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cli.main", "verify", "inventory", "--program", str(program_id)],
        env={**os.environ, **isolated.namespace_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(verify.communicate(), VERIFY_TIMEOUT_S)

    assert verify.returncode == 1, err.decode()
    assert b"Traceback" not in err
    assert f"ticket category {inner.id}: remaining count {FLOAT_COUNT.decode()} in Redis" in out.decode()


@pytest.mark.parametrize("total", ["9.2233720368547758e+18", "1e3", "-1", "0x10", ""])
async def test_inventory_script_refuses_a_total_not_written_in_digits(redis, total):
    program_id, category_id = 9_100_000_000 + uuid.uuid4().int % 1_000_000, 7
    keys = [
        inventory_applied(program_id),
        remaining_counts(program_id),
        ticket_category_prices(program_id),
        available_seats(program_id, category_id),
        seat_facts(program_id, category_id),
        ticket_category_price_versions(program_id),
    ]

    with pytest.raises(ResponseError, match="ERR_BAD_ARGUMENT"):
        await LuaScripts(redis)["inventory_apply"](
            keys=keys, args=[str(uuid.uuid4()), "category", category_id, total, "80.00", 1]
        )

    assert await redis.exists(*keys) == 0

