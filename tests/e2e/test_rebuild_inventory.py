"""`damai rebuild inventory`: a program's Redis purchase state, lost, rebuilt from the log by the
command while the API, a worker, an allocator and a lifecycle run, equal to what the scripts left.
This holds the rebuild's Python reading of the log equal to lua/inventory_apply.lua,
lua/order_reserve.lua and lua/order_release.lua."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import order_decision, program_keys_pattern, remaining_counts
from projections.verify import verify_program_inventory, verify_program_orders
from tests.e2e.conftest import System
from tests.e2e.test_allocation import automatic, chosen, on_sale, order
from tests.e2e.test_order_requests import signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
SETTLED_S = 30
REBUILD_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {"DAMAI_RATE_LIMITS__ORDER_LIMIT": "100000"}


@pytest_asyncio.fixture(scope="module")
async def allocator(system: System, tmp_path_factory) -> AsyncIterator[Child]:
    child = Child(["cli.main", "allocator"], system.settings, tmp_path_factory.mktemp("allocator") / "allocator.log")
    yield child
    child.stop()


@pytest_asyncio.fixture(scope="module")
async def lifecycle(system: System, tmp_path_factory) -> AsyncIterator[Child]:
    child = Child(["cli.main", "lifecycle"], system.settings, tmp_path_factory.mktemp("lifecycle") / "lifecycle.log")
    yield child
    child.stop()


async def snapshot(redis: Any, program_id: int) -> dict[bytes, Any]:
    """Every key of the program's purchase state with its contents (decisions parsed: their JSON's
    key order is the encoder's), but the command side's snapshot of the aggregate."""
    found: dict[bytes, Any] = {}
    decisions = order_decision(program_id, 0)[:-1].encode()
    async for key in redis.scan_iter(match=program_keys_pattern(program_id)):
        kind = await redis.type(key)
        if b":aggregate:" in key:
            continue
        if key.startswith(decisions):
            found[key] = json.loads(await redis.get(key))
        elif kind == b"hash":
            found[key] = await redis.hgetall(key)
        elif kind == b"zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            found[key] = await redis.smembers(key)
        else:
            found[key] = await redis.get(key)
    return found


def damai(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **system.settings.namespace_env()}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=REBUILD_TIMEOUT_S
    )


async def test_a_lost_program_state_is_rebuilt_from_the_log_as_it_was(
    system: System,
    catalogue: ShardedDatabase,
    allocator: Child,
    lifecycle: Child,
    redis,
):
    show = await on_sale(system, catalogue, rows=3, columns=10, realNameRequired=True)
    program_id = show["program"]

    async def inventory_projected() -> bool:
        return bool(await redis.hget(remaining_counts(program_id), str(show["category"])))

    await eventually(inventory_projected, SETTLED_S, "the inventory")
    pair, single, late = (
        await signed_in_buyer(system, buyers=2),
        await signed_in_buyer(system, buyers=1),
        await signed_in_buyer(system, buyers=1),
    )
    held = await order(system, pair, automatic(show, 2, ticketBuyerIds=pair.ticket_buyer_ids))
    taken = await order(system, single, chosen(show, (3, 1)) | {"ticketBuyerIds": single.ticket_buyer_ids})
    refused = await order(system, late, chosen(show, (3, 1)) | {"ticketBuyerIds": late.ticket_buyer_ids})
    cancelled = await order(system, late, automatic(show, 1, ticketBuyerIds=late.ticket_buyer_ids))
    cancel = await system.http.post(f"/api/v1/orders/{cancelled.json()['orderNumber']}/cancel", headers=late.auth)
    assert [a.status_code for a in (held, taken, refused, cancelled, cancel)] == [201, 201, 409, 201, 200]

    async def projected() -> bool:
        report = await verify_program_orders(catalogue, redis, program_id)
        return report.ok and report.awaiting_projection == 0

    await eventually(projected, SETTLED_S, "every order projected into Postgres")
    before = await snapshot(redis, program_id)
    await redis.delete(*[k async for k in redis.scan_iter(match=program_keys_pattern(program_id))])

    rebuilt = await asyncio.to_thread(damai, system, "rebuild", "inventory", "--program", str(program_id))

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert await snapshot(redis, program_id) == before
    report = await verify_program_orders(catalogue, redis, program_id)
    assert (report.differences, report.live_orders, report.live_tickets) == ((), 2, 3)
    assert await verify_program_inventory(catalogue, redis, program_id) == []
    verified = await asyncio.to_thread(damai, system, "verify", "orders", "--program", str(program_id))
    assert verified.returncode == 0, verified.stdout + verified.stderr
