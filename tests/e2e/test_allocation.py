"""Orders decided by a real allocator process: held seats, general-admission tickets held off a
count, every rejection the buyer can meet, and a crowd that never gets one seat twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, remaining_counts
from queries.views import programs
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_admin_programs import _published, program_body
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
DECIDED = {"Prefer": "wait=10"}


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def allocator(system: System, tmp_path_factory) -> AsyncIterator[Child]:
    child = Child(["cli.main", "allocator"], system.settings, tmp_path_factory.mktemp("allocator") / "allocator.log")
    yield child
    child.stop()


async def on_sale(
    system: System, catalogue: ShardedDatabase, rows: int, columns: int, **changes: Any
) -> dict[str, Any]:
    """A published program with one show time and one seated category of ``rows`` × ``columns``,
    its inventory in Redis: program, show time and category ids, and the seats by position."""
    body = program_body(**changes)
    body["showTimes"][0]["ticketCategories"] = [
        {"name": "内场", "price": "880.00", "seatGrid": {"rows": rows, "columns": columns}}
    ]
    program_id = await _published(system, catalogue, body)
    [show_time] = await programs.show_times_of(catalogue, program_id)
    [category] = await programs.ticket_categories_of(catalogue, program_id)
    seats = {(s.row_number, s.column_number): s.id for s in await programs.seats_of(catalogue, program_id)}
    return {"program": program_id, "show": show_time.id, "category": category.id, "seats": seats}


async def counted_on_sale(system: System, catalogue: ShardedDatabase, redis: Any, total: int) -> dict[str, Any]:
    """A published program without seat choice, its one show time's one category counted by its
    ``total`` (general admission), its count in Redis: program, show time and category ids."""
    body = program_body(seatSelectable=False)
    body["showTimes"][0]["ticketCategories"] = [{"name": "站票", "price": "280.00", "total": total}]
    program_id = await _published(system, catalogue, body)
    [show_time] = await programs.show_times_of(catalogue, program_id)
    [category] = await programs.ticket_categories_of(catalogue, program_id)

    async def counted() -> bool:
        return bool(await redis.hget(remaining_counts(program_id), str(category.id)) == str(total).encode())

    await eventually(counted, 30, "the category's count in the inventory")
    return {"program": program_id, "show": show_time.id, "category": category.id, "seats": {}}


async def order(system: System, buyer: Buyer, body: dict[str, Any]) -> Any:
    return await system.http.post("/api/v1/orders", json=body, headers=buyer.auth | DECIDED, timeout=30)


def automatic(show: dict[str, Any], count: int, **changes: Any) -> dict[str, Any]:
    return {
        "programId": str(show["program"]),
        "showTimeId": str(show["show"]),
        "ticketCategoryId": str(show["category"]),
        "count": count,
    } | changes


def chosen(show: dict[str, Any], *positions: tuple[int, int], price: str = "880.00") -> dict[str, Any]:
    return {
        "programId": str(show["program"]),
        "showTimeId": str(show["show"]),
        "seats": [{"id": str(show["seats"][p]), "price": price} for p in positions],
    }


async def test_automatic_seats_are_held_side_by_side_in_the_front_row_nearest_the_centre(
    system: System, catalogue: ShardedDatabase, allocator: Child
):
    show = await on_sale(system, catalogue, rows=3, columns=9)
    buyer = await signed_in_buyer(system)

    held = await order(system, buyer, automatic(show, 3))

    assert held.status_code == 201, held.text
    body = held.json()
    assert body["status"] == "unpaid" and body["totalAmount"] == "2640.00" and body["payDeadline"]
    assert sorted((t["row"], t["column"]) for t in body["tickets"]) == [(1, 4), (1, 5), (1, 6)]
    assert held.headers["location"] == f"/api/v1/orders/{body['orderNumber']}"
    view = await system.http.get(held.headers["location"], headers=buyer.auth)
    assert view.json()["status"] == "unpaid" and len(view.json()["tickets"]) == 3


async def test_each_refusal_of_the_allocator_comes_back_with_its_code(
    system: System, catalogue: ShardedDatabase, allocator: Child
):
    show = await on_sale(system, catalogue, rows=1, columns=5, perOrderLimit=4, perAccountLimit=4)
    first, second, third = [await signed_in_buyer(system) for _ in range(3)]

    middle = await order(system, first, chosen(show, (1, 3)))
    taken = await order(system, second, chosen(show, (1, 3)))
    repriced = await order(system, second, chosen(show, (1, 1), price="800.00"))
    apart = await order(system, second, automatic(show, 3))
    limit = await order(system, first, automatic(show, 4))
    pair = await order(system, third, automatic(show, 2))
    # Two seats are left, (1, 1) and (1, 2) or (1, 4) and (1, 5): the pair nearest the centre is taken.
    rest = await order(system, second, automatic(show, 2))
    sold_out = await order(system, third, automatic(show, 1))

    assert middle.status_code == 201, middle.text
    codes = [(r.status_code, r.json().get("code")) for r in (taken, repriced, apart, limit, rest, sold_out)]
    assert codes == [
        (409, "SEAT_UNAVAILABLE"),
        (409, "PRICE_CHANGED"),
        (409, "NO_ADJACENT_SEATS"),
        (409, "PER_ACCOUNT_LIMIT"),
        (201, None),
        (409, "SOLD_OUT"),
    ], [r.text for r in (taken, repriced, apart, limit, rest, sold_out)]
    assert pair.status_code == 201
    assert taken.json()["details"]["orderNumber"]


async def test_general_admission_tickets_are_held_without_seats_until_the_count_runs_out(
    system: System, catalogue: ShardedDatabase, allocator: Child, redis
):
    show = await counted_on_sale(system, catalogue, redis, total=5)
    buyers = [await signed_in_buyer(system) for _ in range(3)]

    answers = [await order(system, buyer, automatic(show, 2)) for buyer in buyers]

    assert [a.status_code for a in answers] == [201, 201, 409], [a.text for a in answers]
    assert answers[2].json()["code"] == "SOLD_OUT"
    for held in answers[:2]:
        body = held.json()
        assert body["status"] == "unpaid" and body["totalAmount"] == "560.00"
        assert [(t["seatId"], t["row"], t["column"], t["price"]) for t in body["tickets"]] == [
            (None, None, None, "280.00")
        ] * 2
    view = await system.http.get(answers[0].headers["location"], headers=buyers[0].auth)
    assert view.status_code == 200 and len(view.json()["tickets"]) == 2
    assert int(await redis.hget(remaining_counts(show["program"]), str(show["category"]))) == 1


async def test_one_ticket_per_identity_document_per_show(system: System, catalogue: ShardedDatabase, allocator: Child):
    show = await on_sale(system, catalogue, rows=2, columns=10, realNameRequired=True)
    buyer = await signed_in_buyer(system, buyers=2)

    first = await order(system, buyer, automatic(show, 2, ticketBuyerIds=buyer.ticket_buyer_ids))
    again = await order(system, buyer, automatic(show, 1, ticketBuyerIds=buyer.ticket_buyer_ids[:1]))
    without = await system.http.post("/api/v1/orders", json=automatic(show, 1), headers=buyer.auth)

    assert first.status_code == 201, first.text
    assert sorted(t["ticketBuyerId"] for t in first.json()["tickets"]) == sorted(buyer.ticket_buyer_ids)
    assert (again.status_code, again.json()["code"]) == (409, "TICKET_BUYER_HAS_TICKET")
    assert (without.status_code, without.json()["code"]) == (422, "TICKET_BUYERS_REQUIRED")


async def test_a_crowd_gets_every_seat_once_and_every_request_an_answer(
    system: System, catalogue: ShardedDatabase, allocator: Child, redis
):
    show = await on_sale(system, catalogue, rows=10, columns=20)  # 200 seats
    buyers = [await signed_in_buyer(system) for _ in range(40)]
    bodies = [automatic(show, 1 + i % 3) if i % 2 else chosen(show, (1 + i % 10, 1 + i % 20)) for i in range(400)]

    answers = await asyncio.gather(*(order(system, buyers[i % len(buyers)], b) for i, b in enumerate(bodies)))

    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    held = [t["seatId"] for a in answers if a.status_code == 201 for t in a.json()["tickets"]]
    assert len(held) == len(set(held)), "a seat was held twice"
    left = await redis.zcard(available_seats(show["program"], show["category"]))
    assert len(held) + left == 200
    assert not set(held) & {
        m.decode() for m in await redis.zrange(available_seats(show["program"], show["category"]), 0, -1)
    }

    async def all_decided() -> bool:
        views = [
            await system.http.get(a.headers["location"], headers=buyers[i % len(buyers)].auth)
            for i, a in enumerate(answers)
            if "location" in a.headers
        ]
        return all(v.json()["status"] != "pending" for v in views)

    await eventually(all_decided, 30, "every order decided")
