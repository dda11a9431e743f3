"""`damai rebuild postgres` and `damai verify postgres` while the API, a worker, an allocator and a
lifecycle run: the shadow equals the live tables, a tampered row is found and repaired, and orders
placed during a rebuild all land in the tables swapped in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from projections.rebuild_postgres import PROJECTIONS, PostgresRebuilt, rebuild_postgres
from projections.verify import verify_program_orders
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.e2e.test_rebuild_inventory import damai
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
SETTLED_S = 30
ORDERS_DURING_REBUILD = 12


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def deciders(system: System, tmp_path_factory) -> AsyncIterator[None]:
    logs = tmp_path_factory.mktemp("deciders")
    children = [Child(["cli.main", kind], system.settings, logs / f"{kind}.log") for kind in ("allocator", "lifecycle")]
    yield
    for child in children:
        child.stop()


async def sold_some(system: System, catalogue: ShardedDatabase, redis: Any) -> tuple[dict[str, Any], list[Buyer]]:
    """A show with held, cancelled and refused orders, all projected."""
    show = await on_sale(system, catalogue, rows=4, columns=10, perAccountLimit=40)
    buyers = [await signed_in_buyer(system, buyers=1) for _ in range(3)]
    placed = [await order(system, buyer, automatic(show, 2)) for buyer in buyers]
    assert [p.status_code for p in placed] == [201] * 3, [p.text for p in placed]
    cancelled = placed[0].json()["orderNumber"]
    cancel = await system.http.post(f"/api/v1/orders/{cancelled}/cancel", headers=buyers[0].auth)
    assert cancel.status_code == 200, cancel.text
    await settled(catalogue, redis, show["program"])
    return show, buyers


async def settled(catalogue: ShardedDatabase, redis: Any, program_id: int) -> None:
    async def projected() -> bool:
        report = await verify_program_orders(catalogue, redis, program_id)
        return report.ok and report.awaiting_projection == 0

    await eventually(projected, SETTLED_S, "every order projected into Postgres")


def unequal(report: PostgresRebuilt) -> list[str]:
    return [f"{t.database}.{t.table}: {t.rows} {t.differences}" for t in report.tables if not t.equal]


async def test_every_projection_rebuilt_beside_the_live_one_equals_it(
    system: System, catalogue: ShardedDatabase, deciders: None, redis
):
    await sold_some(system, catalogue, redis)

    reports = [await rebuild_postgres(system.settings, name, swap=False) for name in PROJECTIONS]

    assert [(r.projection, unequal(r)) for r in reports] == [(name, []) for name in PROJECTIONS]
    assert all(r.events > 0 for r in reports if r.projection != "payment")
    assert not any(r.swapped for r in reports)


async def test_a_tampered_row_is_named_by_verify_and_put_right_by_a_rebuild(
    system: System, catalogue: ShardedDatabase, deciders: None, redis
):
    show, buyers = await sold_some(system, catalogue, redis)
    number = (await order(system, buyers[1], automatic(show, 1))).json()["orderNumber"]
    await settled(catalogue, redis, show["program"])
    shard = catalogue.layout.order(int(number))
    tampered = f"UPDATE {shard.table} SET status = 'paid' WHERE order_number = $1"
    await catalogue.pools[shard.database].execute(tampered, int(number))

    verified = await asyncio.to_thread(damai, system, "verify", "postgres", "--projection", "order")
    rebuilt = await rebuild_postgres(system.settings, "program", swap=True)
    status = await catalogue.fetchval(shard, "SELECT status FROM {table} WHERE order_number = $1", int(number))
    again = await rebuild_postgres(system.settings, "program", swap=False)

    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"{shard.database}.{shard.table}: differs" in verified.stdout
    assert f"[{number}]: differs" in verified.stdout
    assert rebuilt.swapped and [t.table for t in rebuilt.tables if not t.equal] == [shard.table]
    assert status == "unpaid"
    assert unequal(again) == []


async def test_orders_placed_during_a_rebuild_all_land_in_the_swapped_tables(
    system: System, catalogue: ShardedDatabase, deciders: None, redis
):
    show, _ = await sold_some(system, catalogue, redis)
    buyers = [await signed_in_buyer(system) for _ in range(ORDERS_DURING_REBUILD)]

    async def buy_meanwhile() -> list[str]:
        numbers = []
        for buyer in buyers:
            placed = await order(system, buyer, automatic(show, 1))
            assert placed.status_code == 201, placed.text
            numbers.append(placed.json()["orderNumber"])
        return numbers

    rebuilt, numbers = await asyncio.gather(rebuild_postgres(system.settings, "program", swap=True), buy_meanwhile())
    await settled(catalogue, redis, show["program"])
    found = [
        await catalogue.fetchval(
            catalogue.layout.order(int(n)), "SELECT status FROM {table} WHERE order_number = $1", int(n)
        )
        for n in numbers
    ]
    after = await rebuild_postgres(system.settings, "program", swap=False)

    assert rebuilt.swapped and rebuilt.replaced_schema is not None
    assert found == ["unpaid"] * ORDERS_DURING_REBUILD
    assert unequal(after) == []
