"""A crowd through real HTTP: 2,000 buyers' requests for a 500-seat show, chosen and automatic seats
mixed — every accepted request decided, exactly the show's seats held, none twice, Redis and
Postgres agreeing — also with the allocator SIGKILLed and restarted mid-run, and with two allocator
processes sharing the partitions."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats
from infra.tokens import AccessTokens
from projections.verify import verify_program_orders
from tests.e2e.conftest import System
from tests.e2e.test_allocation import automatic, chosen, on_sale
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
REQUESTS = 2_000
BUYERS = 500
ROWS, COLUMNS = 20, 25  # 500 seats


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {"DAMAI_RATE_LIMITS__ORDER_LIMIT": "100000000"}


@pytest_asyncio.fixture
async def allocators(system: System, tmp_path) -> AsyncIterator[list[Child]]:
    started: list[Child] = []

    def start(name: str) -> Child:
        child = Child(["cli.main", "allocator"], system.settings, tmp_path / f"{name}.log")
        started.append(child)
        return child

    start("allocator-1")
    yield started
    for child in started:
        child.stop()


def tokens(system: System, first_user: int) -> list[dict[str, str]]:
    """Signed-in buyers without registering them: the token is all an order needs of its buyer."""
    issuer = AccessTokens(system.settings.tokens)
    return [{"Authorization": f"Bearer {issuer.issue(first_user + n).token}"} for n in range(BUYERS)]


def bodies(show: dict[str, Any]) -> list[dict[str, Any]]:
    rng = random.Random(20261130)
    positions = list(show["seats"])
    return [
        chosen(show, rng.choice(positions)) if i % 2 else automatic(show, rng.choice((1, 2))) for i in range(REQUESTS)
    ]


async def crowd(
    system: System, show: dict[str, Any], auth: list[dict[str, str]], during: Any = None, requests: int = REQUESTS
) -> list[Any]:
    """The requests at once over 64 connections (a request waits for a free one as long as it takes)."""
    # Idle connections are dropped before the API's keep-alive timeout (5 s) can close one under a
    # request being sent on it.
    limits = httpx.Limits(max_connections=64, keepalive_expiry=2.0)
    timeout = httpx.Timeout(60, pool=None)
    async with httpx.AsyncClient(base_url=system.base_url, timeout=timeout, limits=limits) as http:
        sends = [
            http.post("/api/v1/orders", json=b, headers=auth[i % BUYERS]) for i, b in enumerate(bodies(show)[:requests])
        ]
        tasks = [asyncio.ensure_future(s) for s in sends]
        if during is not None:
            await during()
        return list(await asyncio.gather(*tasks))


async def everything_decided_and_held_once(
    system: System, catalogue: ShardedDatabase, redis, show: dict[str, Any], answers: list[Any], auth
) -> Counter[str]:
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {202, 409}, statuses
    accepted = [(i, a.json()["orderNumber"]) for i, a in enumerate(answers) if a.status_code == 202]
    views: dict[str, Any] = {}

    async def decided() -> bool:
        async with httpx.AsyncClient(base_url=system.base_url, timeout=60) as http:
            for i, number in accepted:
                if number not in views or views[number]["status"] == "pending":
                    views[number] = (await http.get(f"/api/v1/orders/{number}", headers=auth[i % BUYERS])).json()
        return all(v["status"] != "pending" for v in views.values())

    await eventually(decided, 90, "every accepted request decided")
    held = [t["seatId"] for v in views.values() if v["status"] == "unpaid" for t in v["tickets"]]
    free = {m.decode() for m in await redis.zrange(available_seats(show["program"], show["category"]), 0, -1)}
    assert len(held) == len(set(held)), "a seat was held twice"
    assert len(held) + len(free) == ROWS * COLUMNS and not set(held) & free

    async def verified() -> bool:
        report = await verify_program_orders(catalogue, redis, show["program"])
        return report.ok and report.awaiting_projection == 0

    await eventually(verified, 60, "Redis and Postgres to agree on the show's orders")
    return Counter(v["status"] for v in views.values())


async def test_a_crowd_of_requests_sells_the_show_once(system: System, catalogue, redis, allocators):
    show = await on_sale(system, catalogue, rows=ROWS, columns=COLUMNS, perOrderLimit=2)

    answers = await crowd(system, show, auth := tokens(system, 8_000_000_000))

    outcomes = await everything_decided_and_held_once(system, catalogue, redis, show, answers, auth)
    assert outcomes["unpaid"] > 0 and outcomes["rejected"] > 0


async def test_the_allocator_killed_and_restarted_mid_run_loses_and_repeats_nothing(
    system: System, catalogue, redis, allocators, tmp_path
):
    show = await on_sale(system, catalogue, rows=ROWS, columns=COLUMNS, perOrderLimit=2)
    auth = tokens(system, 8_100_000_000)

    async def kill_and_restart() -> None:
        await asyncio.sleep(1.0)
        allocators[0].stop(signal.SIGKILL)
        await asyncio.sleep(1.0)
        allocators.append(Child(["cli.main", "allocator"], system.settings, tmp_path / "allocator-2.log"))

    answers = await crowd(system, show, auth, during=kill_and_restart)

    await everything_decided_and_held_once(system, catalogue, redis, show, answers, auth)


async def test_two_allocators_share_the_partitions_and_each_show_is_sold_once(
    system: System, catalogue, redis, allocators, tmp_path
):
    allocators.append(Child(["cli.main", "allocator"], system.settings, tmp_path / "allocator-2.log"))
    shows = [await on_sale(system, catalogue, rows=ROWS, columns=COLUMNS, perOrderLimit=2) for _ in range(2)]
    auth = tokens(system, 8_200_000_000)

    results = await asyncio.gather(*(crowd(system, show, auth, requests=REQUESTS // 2) for show in shows))

    for show, answers in zip(shows, results, strict=True):
        await everything_decided_and_held_once(system, catalogue, redis, show, answers, auth)
