"""The allocator's limits under concurrent orders through real HTTP (issue 11): one user's orders
racing each other never hold more than the program's per-account limit, and one ID document gets
one ticket per show however many users' orders name it at once. What a cancel frees can be used
again."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import account_tickets, available_seats
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child

pytestmark = pytest.mark.slow
LIMIT = 6
SEATS = 200
CONCURRENT = 30


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def processors(system: System, tmp_path_factory) -> AsyncIterator[None]:
    logs = tmp_path_factory.mktemp("processors")
    children = [
        Child(["cli.main", "allocator"], system.settings, logs / "allocator.log"),
        Child(["cli.main", "lifecycle"], system.settings, logs / "lifecycle.log"),
    ]
    yield
    for child in children:
        child.stop()


async def test_one_users_concurrent_orders_hold_no_more_than_the_per_account_limit(
    system: System, catalogue: ShardedDatabase, processors: None, redis
):
    show = await on_sale(system, catalogue, rows=10, columns=SEATS // 10, perAccountLimit=LIMIT, perOrderLimit=2)
    buyer = await signed_in_buyer(system)

    answers = await asyncio.gather(*(order(system, buyer, automatic(show, 2)) for _ in range(CONCURRENT)))

    held = [a.json() for a in answers if a.status_code == 201]
    refused = Counter((a.status_code, a.json().get("code")) for a in answers if a.status_code != 201)
    assert sum(len(h["tickets"]) for h in held) == LIMIT, [a.text for a in answers]
    assert refused == {(409, "PER_ACCOUNT_LIMIT"): CONCURRENT - LIMIT // 2}
    assert int(await redis.get(account_tickets(show["program"], _user_of(buyer)))) == LIMIT
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS - LIMIT


async def test_a_cancelled_order_gives_its_tickets_back_to_the_per_account_allowance(
    system: System, catalogue: ShardedDatabase, processors: None, redis
):
    show = await on_sale(system, catalogue, rows=10, columns=SEATS // 10, perAccountLimit=LIMIT, perOrderLimit=2)
    buyer = await signed_in_buyer(system)
    answers = await asyncio.gather(*(order(system, buyer, automatic(show, 2)) for _ in range(LIMIT)))
    held = [a.json()["orderNumber"] for a in answers if a.status_code == 201]
    assert len(held) == LIMIT // 2, [a.text for a in answers]

    cancelled = await system.http.post(f"/api/v1/orders/{held[0]}/cancel", headers=buyer.auth)
    again = await asyncio.gather(*(order(system, buyer, automatic(show, 2)) for _ in range(3)))

    assert cancelled.status_code == 200, cancelled.text
    assert sorted((a.status_code, a.json().get("code")) for a in again) == [
        (201, None),
        (409, "PER_ACCOUNT_LIMIT"),
        (409, "PER_ACCOUNT_LIMIT"),
    ], [a.text for a in again]
    assert int(await redis.get(account_tickets(show["program"], _user_of(buyer)))) == LIMIT


async def test_one_id_document_named_by_several_users_at_once_gets_one_ticket_per_show(
    system: System, catalogue: ShardedDatabase, processors: None
):
    show = await on_sale(system, catalogue, rows=2, columns=10, realNameRequired=True)
    document = f"P{time.time_ns() % 10**9:09d}"
    buyers = [await _with_ticket_buyer(system, document) for _ in range(5)]

    answers = await asyncio.gather(*(_one_ticket(system, b, show) for b in buyers))

    outcomes = Counter((a.status_code, a.json().get("code")) for a in answers)
    assert outcomes == {(201, None): 1, (409, "TICKET_BUYER_HAS_TICKET"): 4}, [a.text for a in answers]
    [winner] = [(a, b) for a, b in zip(answers, buyers, strict=True) if a.status_code == 201]
    cancelled = await system.http.post(
        f"/api/v1/orders/{winner[0].json()['orderNumber']}/cancel", headers=winner[1].auth
    )
    assert cancelled.status_code == 200, cancelled.text
    after = await _one_ticket(system, next(b for b in buyers if b is not winner[1]), show)
    assert after.status_code == 201, after.text


async def _with_ticket_buyer(system: System, id_number: str) -> Buyer:
    """A signed-in user with one ticket buyer of the ID document ``id_number``."""
    user = await signed_in_buyer(system)
    added = await system.http.post(
        "/api/v1/users/me/ticket-buyers",
        json={"name": "观众", "idType": "PASSPORT", "idNumber": id_number},
        headers=user.auth,
    )
    assert added.status_code == 201, added.text
    return Buyer(user.auth, [added.json()["id"]])


async def _one_ticket(system: System, buyer: Buyer, show: dict[str, Any]) -> Any:
    return await order(system, buyer, automatic(show, 1, ticketBuyerIds=buyer.ticket_buyer_ids))


def _user_of(buyer: Buyer) -> int:
    token = buyer.auth["Authorization"].split()[1]
    return int(jwt.decode(token, options={"verify_signature": False})["sub"])
