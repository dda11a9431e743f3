"""`damai rebuild inventory`: a program's Redis purchase state, lost, rebuilt from the log by the
command while the API, a worker, an allocator and a lifecycle run, equal to what the scripts left.
This holds the rebuild's Python reading of the log equal to lua/inventory_apply.lua,
lua/order_reserve.lua and lua/order_release.lua.

`damai rebuild redis` and `damai verify redis` (cli/rebuild_redis.py): the hash of a program's keys
before and after a rebuild, equal when nothing was wrong; a tampered key named by the verify, put
right by the rebuild; every program of the namespace at once; no difference seen while orders are
decided during the comparison."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, order_decision, program_keys_pattern, remaining_counts, seat_facts
from projections.inventory_log import ProgramLogs
from projections.rebuild_inventory import (
    Compared,
    RebuildRefused,
    Rebuilt,
    compare_program_state,
    rebuild_program_inventory,
)
from projections.redis_hashes import hash_purchase_state
from projections.verify import verify_program_inventory, verify_program_orders
from queries.views.programs import full_route_program_ids
from tests.e2e.conftest import System, buyers_env
from tests.e2e.sandbox import sandbox_client, sandbox_env
from tests.e2e.test_allocation import automatic, chosen, counted_on_sale, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child, eventually, free_port

pytestmark = pytest.mark.slow
SETTLED_S = 30
REBUILD_TIMEOUT_S = 120
SELLING_PAUSE_S = 0.1
COMPARING_S = 120
"""Between two orders of the sale the comparisons run beside: room for some to find Redis and the log agreeing."""


@pytest.fixture(scope="module")
def sandbox_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api_env(sandbox_port: int) -> dict[str, str]:
    return buyers_env(**sandbox_env(sandbox_port))


@pytest_asyncio.fixture(scope="module")
async def allocator(system: System, tmp_path_factory) -> AsyncIterator[Child]:
    child = Child(["cli.main", "allocator"], system.settings, tmp_path_factory.mktemp("allocator") / "allocator.log")
    yield child
    child.stop()


@pytest_asyncio.fixture(scope="module")
async def lifecycle(system: System, sandbox_port: int, tmp_path_factory) -> AsyncIterator[Child]:
    logs = tmp_path_factory.mktemp("lifecycle")
    child = Child(["cli.main", "lifecycle"], system.settings, logs / "lifecycle.log", sandbox_env(sandbox_port))
    yield child
    child.stop()


@pytest_asyncio.fixture(scope="module")
async def sandbox(system: System, sandbox_port: int, tmp_path_factory) -> AsyncIterator[httpx.AsyncClient]:
    """The payment sandbox and the payment processor: a buyer pays there, the order becomes paid."""
    logs = tmp_path_factory.mktemp("payments")
    children = [
        Child(["cli.main", name], system.settings, logs / f"{name}.log", sandbox_env(sandbox_port))
        for name in ("sandbox-pay", "payments")
    ]
    async with sandbox_client(sandbox_port) as client:
        yield client
    for child in children:
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


async def redis_command(system: System, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``damai rebuild redis …`` or ``damai verify redis …`` in the namespace."""
    return await asyncio.to_thread(damai, system, command, "redis", *args)


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


async def inventory_projected(redis: Any, show: dict[str, Any]) -> None:
    async def projected() -> bool:
        return bool(await redis.hget(remaining_counts(show["program"]), str(show["category"])))

    await eventually(projected, SETTLED_S, "the inventory")


async def orders_settled(catalogue: ShardedDatabase, redis: Any, program_id: int) -> None:
    """Every decision in the log and projected: Redis, the log and Postgres tell one story."""

    async def settled() -> bool:
        report = await verify_program_orders(catalogue, redis, program_id)
        return report.ok and report.awaiting_projection == 0

    await eventually(settled, SETTLED_S, "every order projected into Postgres")


async def paid_order(system: System, sandbox: httpx.AsyncClient, buyer: Buyer, body: dict[str, Any]) -> None:
    placed = await order(system, buyer, body)
    assert placed.status_code == 201, placed.text
    number = placed.json()["orderNumber"]
    started = await system.http.post(f"/api/v1/orders/{number}/payment", json={"channel": "alipay"}, headers=buyer.auth)
    assert started.status_code == 201, started.text
    assert (await sandbox.get(started.json()["payUrl"])).status_code == 200
    assert (await sandbox.post(f"/sandbox/trades/{number}/pay")).status_code == 200

    async def paid() -> bool:
        return bool((await system.http.get(f"/api/v1/orders/{number}", headers=buyer.auth)).json()["status"] == "paid")

    await eventually(paid, SETTLED_S, f"order {number} paid")


async def test_a_rebuild_hashes_the_keys_the_same_before_and_after_when_nothing_was_wrong(
    system: System, catalogue: ShardedDatabase, allocator: Child, lifecycle: Child, sandbox: httpx.AsyncClient, redis
):
    show = await on_sale(system, catalogue, rows=3, columns=10)
    program_id = show["program"]
    await inventory_projected(redis, show)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    held = await order(system, buyer, automatic(show, 2))
    await paid_order(system, sandbox, other, chosen(show, (3, 1)))
    refused = await order(system, buyer, chosen(show, (3, 1)))
    cancelled = await order(system, other, automatic(show, 1))
    cancel = await system.http.post(f"/api/v1/orders/{cancelled.json()['orderNumber']}/cancel", headers=other.auth)
    assert [a.status_code for a in (held, refused, cancelled, cancel)] == [201, 409, 201, 200]
    await orders_settled(catalogue, redis, program_id)

    rebuilt = await rebuild_program_inventory(system.settings, redis, program_id)
    read_back, _ = await hash_purchase_state(redis, program_id)
    command = await redis_command(system, "rebuild", "--program", str(program_id))

    assert (rebuilt.unchanged, rebuilt.differences) == (True, ())
    assert rebuilt.before == rebuilt.after == read_back
    assert len([k for k in read_back.keys if k.startswith(order_decision(program_id, 0)[:-1])]) == 4
    assert command.returncode == 0, command.stdout + command.stderr
    assert f"program {program_id}: rebuilt, unchanged: hash {read_back} (attempt" in command.stdout
    assert (
        "1 program in " in command.stdout and " 1 unchanged, 0 repaired (0 keys changed), 0 refused" in command.stdout
    )


async def test_a_tampered_key_is_named_by_verify_redis_and_put_right_by_rebuild_redis(
    system: System, catalogue: ShardedDatabase, allocator: Child, lifecycle: Child, redis
):
    show = await on_sale(system, catalogue, rows=2, columns=5)
    program_id, category = show["program"], show["category"]
    await inventory_projected(redis, show)
    assert (await order(system, await signed_in_buyer(system), automatic(show, 2))).status_code == 201
    await orders_settled(catalogue, redis, program_id)
    remaining, available = remaining_counts(program_id), available_seats(program_id, category)
    await redis.hincrby(remaining, str(category), 1)
    await redis.zrem(available, str(show["seats"][(2, 5)]))

    found = await redis_command(system, "verify", "--program", str(program_id))
    rebuilt = await redis_command(system, "rebuild", "--program", str(program_id))
    verified = await redis_command(system, "verify", "--program", str(program_id))

    assert found.returncode == 1, found.stdout + found.stderr
    assert f"program {program_id}: 2 keys differ" in found.stdout
    assert f"{remaining}: 1 field with another value, e.g. '{category}': '9' in Redis, '8' from the log" in found.stdout
    assert f"{available}: 1 member only from the log, e.g. '{show['seats'][(2, 5)]}'" in found.stdout
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"program {program_id}: rebuilt, 2 keys changed" in rebuilt.stdout
    assert f"  {remaining}: " in rebuilt.stdout and f"  {available}: " in rebuilt.stdout
    assert " 0 unchanged, 1 repaired (2 keys changed), 0 refused" in rebuilt.stdout
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"program {program_id}: agrees with the log" in verified.stdout
    assert (await verify_program_orders(catalogue, redis, program_id)).ok


async def test_every_program_is_verified_and_rebuilt_without_a_program(
    system: System, catalogue: ShardedDatabase, allocator: Child, lifecycle: Child, redis
):
    seated = await on_sale(system, catalogue, rows=2, columns=4)
    counted = await counted_on_sale(system, catalogue, redis, total=20)
    await inventory_projected(redis, seated)
    buyer = await signed_in_buyer(system)
    assert (await order(system, buyer, automatic(seated, 1))).status_code == 201
    assert (await order(system, buyer, automatic(counted, 3))).status_code == 201
    await orders_settled(catalogue, redis, counted["program"])
    broken = seat_facts(seated["program"], seated["category"])
    await redis.hdel(broken, str(seated["seats"][(2, 4)]))
    program_ids = [p async for ids in full_route_program_ids(catalogue) for p in ids]

    found = await redis_command(system, "verify")
    rebuilt = await redis_command(system, "rebuild")
    verified = await redis_command(system, "verify")

    assert len(program_ids) >= 3
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"program {seated['program']}: 1 key differs" in found.stdout
    assert f"  {broken}: 1 field only from the log" in found.stdout
    assert (
        f"{len(program_ids)} programs verified in" in found.stdout and f"{len(program_ids) - 1} agree" in found.stdout
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert all(f"program {p}: rebuilt, " in rebuilt.stdout for p in program_ids)
    assert f"{len(program_ids)} programs in " in rebuilt.stdout
    assert f"{len(program_ids) - 1} unchanged, 1 repaired (1 key changed), 0 refused" in rebuilt.stdout
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{len(program_ids)} agree, 0 differ (0 keys), 0 not verified" in verified.stdout


async def test_no_difference_is_seen_while_orders_are_decided_during_the_comparison(
    system: System, catalogue: ShardedDatabase, allocator: Child, lifecycle: Child, redis
):
    show = await on_sale(system, catalogue, rows=4, columns=10, perAccountLimit=40)
    program_id = show["program"]
    await inventory_projected(redis, show)
    buyers = [await signed_in_buyer(system) for _ in range(3)]

    async def sell() -> None:
        for n in range(20):
            buyer = buyers[n % len(buyers)]
            placed = await order(system, buyer, automatic(show, 1 + n % 2))
            if n % 3 == 0 and placed.status_code == 201:
                number = placed.json()["orderNumber"]
                await system.http.post(f"/api/v1/orders/{number}/cancel", headers=buyer.auth)
            await asyncio.sleep(SELLING_PAUSE_S)

    selling = asyncio.create_task(sell())
    seen: list[Compared | Rebuilt | str] = []
    async with ProgramLogs(system.settings, [program_id]) as logs:  # read on from one comparison to the next
        deadline = time.monotonic() + COMPARING_S
        while not selling.done() or not {Compared, Rebuilt} <= {type(s) for s in seen}:
            assert time.monotonic() < deadline, f"no comparison and rebuild got through in {COMPARING_S}s: {seen[-6:]}"
            try:
                async with asyncio.timeout(COMPARING_S):
                    seen.append(await compare_program_state(system.settings, redis, program_id, logs=logs))
                    seen.append(await rebuild_program_inventory(system.settings, redis, program_id, logs=logs))
            except RebuildRefused:
                seen.append("refused")
    await selling
    await orders_settled(catalogue, redis, program_id)
    after = await compare_program_state(system.settings, redis, program_id)

    assert [s for s in seen if isinstance(s, Compared) and not s.ok] == []
    assert [s.differences for s in seen if isinstance(s, Rebuilt) and not s.unchanged] == []
    assert after.ok and after.redis.count > 10
