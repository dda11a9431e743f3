"""Placing an order through the API, up to the log: every refusal before the log with its code,
the 202 and its Location, Idempotency-Key, Prefer: wait, the OrderRequested appended, and the
buyer's own view of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from events.order import OrderRequested
from events.serialization import decode, payload_of
from infra.postgres.sharded import ShardedDatabase
from infra.redis import create_redis
from queries.views import programs
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_admin_programs import _published, program_body, seats_projected
from tests.e2e.test_users import PASSWORD, new_mobile, register
from tests.processes import eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@dataclass(frozen=True)
class Show:
    program_id: int
    show_time_id: int
    vip: int
    stand: int


@dataclass(frozen=True)
class Buyer:
    auth: dict[str, str]
    ticket_buyer_ids: list[str]


@pytest_asyncio.fixture(scope="module")
async def show(system: System, catalogue: ShardedDatabase, redis_module: Redis) -> Show:
    program_id = await _published(system, catalogue, program_body(perOrderLimit=4))
    [show_time] = await programs.show_times_of(catalogue, program_id)
    categories = {c.name: c.id for c in await programs.ticket_categories_of(catalogue, program_id)}
    await seats_projected(redis_module, program_id, categories["VIP"], 200)
    return Show(program_id, show_time.id, categories["VIP"], categories["看台"])


@pytest_asyncio.fixture(scope="module")
async def redis_module(system: System) -> AsyncIterator[Redis]:
    redis = create_redis(system.settings.redis)
    yield redis
    await redis.aclose()


async def signed_in_buyer(system: System, buyers: int = 0) -> Buyer:
    mobile = new_mobile()
    await register(system, mobile)
    session = await system.http.post("/api/v1/sessions", json={"mobile": mobile, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {session.json()['accessToken']}"}
    ids = []
    for n in range(buyers):
        added = await system.http.post(
            "/api/v1/users/me/ticket-buyers",
            json={"name": "观众", "idType": "PASSPORT", "idNumber": f"P{time.time_ns() % 10**9:09d}{n}"},
            headers=auth,
        )
        assert added.status_code == 201, added.text
        ids.append(added.json()["id"])
    return Buyer(auth, ids)


def automatic(show: Show, count: int = 2, **changes: object) -> dict[str, object]:
    return {
        "programId": str(show.program_id),
        "showTimeId": str(show.show_time_id),
        "ticketCategoryId": str(show.vip),
        "count": count,
    } | changes


async def test_an_accepted_request_is_appended_and_answered_202_with_its_location(system: System, show: Show):
    buyer = await signed_in_buyer(system, buyers=2)

    accepted = await system.http.post(
        "/api/v1/orders", json=automatic(show, ticketBuyerIds=buyer.ticket_buyer_ids), headers=buyer.auth
    )

    assert accepted.status_code == 202, accepted.text
    order_number = accepted.json()["orderNumber"]
    assert accepted.json() == {"orderNumber": order_number, "status": "pending"}
    assert accepted.headers["location"] == f"/api/v1/orders/{order_number}"
    view = await system.http.get(accepted.headers["location"], headers=buyer.auth)
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "pending" and view.json()["programId"] == str(show.program_id)
    requested = await _requested(system, int(order_number))
    assert requested.count == 2 and requested.ticket_category_id == show.vip
    assert [b.ticket_buyer_id for b in requested.ticket_buyers] == [int(i) for i in buyer.ticket_buyer_ids]
    assert all(len(b.id_number_blind) == 64 for b in requested.ticket_buyers)
    assert requested.rules.per_account_limit == 6 and requested.rules.real_name_required is False
    # Another user's order number is no order of theirs.
    other = await signed_in_buyer(system)
    assert (await system.http.get(accepted.headers["location"], headers=other.auth)).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"programId": "999999999"}, 404, "PROGRAM_NOT_FOUND"),
        ({"showTimeId": "999999999"}, 404, "SHOW_TIME_NOT_FOUND"),
        ({"ticketCategoryId": "999999999"}, 404, "TICKET_CATEGORY_NOT_FOUND"),
        ({"count": 5}, 422, "PER_ORDER_LIMIT"),
        ({"count": 0}, 422, "VALIDATION_FAILED"),
        ({"seats": [{"id": "1", "price": "1.00"}]}, 422, "VALIDATION_FAILED"),
        ({"userId": "1"}, 422, "VALIDATION_FAILED"),
        ({"ticketBuyerIds": ["123", "123"]}, 422, "TICKET_BUYERS_REPEATED"),
        ({"ticketBuyerIds": ["123"]}, 422, "TICKET_BUYER_NOT_FOUND"),
        ({"count": 1, "ticketBuyerIds": ["1", "2"]}, 422, "TICKET_BUYERS_TOO_MANY"),
    ],
)
async def test_a_request_that_cannot_succeed_is_refused_before_the_log(
    system: System, show: Show, change, status, code
):
    buyer = await signed_in_buyer(system)
    body = automatic(show) | change

    refused = await system.http.post("/api/v1/orders", json=body, headers=buyer.auth)

    assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text


async def test_someone_elses_ticket_buyer_is_not_yours(system: System, show: Show):
    owner, other = await signed_in_buyer(system, buyers=1), await signed_in_buyer(system)

    refused = await system.http.post(
        "/api/v1/orders", json=automatic(show, count=1, ticketBuyerIds=owner.ticket_buyer_ids), headers=other.auth
    )

    assert (refused.status_code, refused.json()["code"]) == (422, "TICKET_BUYER_NOT_FOUND")


async def test_seats_are_chosen_only_where_the_program_allows_and_only_while_on_sale(
    system: System, catalogue: ShardedDatabase, show: Show
):
    buyer = await signed_in_buyer(system)
    counted = program_body(seatSelectable=False)
    counted["showTimes"][0]["ticketCategories"] = [{"name": "站票", "price": "280.00", "total": 500}]
    general = await _published(system, catalogue, counted)
    [general_show] = await programs.show_times_of(catalogue, general)
    seat = (await programs.seats_of(catalogue, show.program_id))[0]
    chosen = {"showTimeId": str(general_show.id), "seats": [{"id": str(seat.id), "price": "1680.00"}]}

    not_chosen_here = await system.http.post(
        "/api/v1/orders", json={"programId": str(general), **chosen}, headers=buyer.auth
    )
    await system.http.post(f"/api/v1/admin/programs/{general}/off-sale", json={}, headers=system.admin())
    await eventually(lambda: _status(system, general, "off_sale"), 30, "the program off sale in the detail")
    off_sale = await system.http.post(
        "/api/v1/orders",
        json={"programId": str(general), "showTimeId": str(general_show.id), "ticketCategoryId": "1", "count": 1},
        headers=buyer.auth,
    )

    assert (not_chosen_here.status_code, not_chosen_here.json()["code"]) == (422, "SEAT_CHOICE_NOT_ALLOWED")
    assert (off_sale.status_code, off_sale.json()["code"]) == (409, "PROGRAM_NOT_ON_SALE")


async def _status(system: System, program_id: int, status: str) -> bool:
    return bool((await system.http.get(f"/api/v1/programs/{program_id}")).json().get("status") == status)


async def test_an_idempotency_key_returns_the_same_order_and_refuses_another_body(system: System, show: Show):
    buyer = await signed_in_buyer(system)
    headers = buyer.auth | {"Idempotency-Key": f"checkout-{time.time_ns()}"}

    first = await system.http.post("/api/v1/orders", json=automatic(show), headers=headers)
    again = await system.http.post("/api/v1/orders", json=automatic(show), headers=headers)
    other = await system.http.post("/api/v1/orders", json=automatic(show, count=1), headers=headers)
    bad = await system.http.post(
        "/api/v1/orders", json=automatic(show), headers=buyer.auth | {"Idempotency-Key": "a b"}
    )

    assert first.status_code == again.status_code == 202
    assert first.json()["orderNumber"] == again.json()["orderNumber"]
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert (bad.status_code, bad.json()["code"]) == (422, "BAD_IDEMPOTENCY_KEY")


async def test_prefer_wait_answers_202_when_nothing_decided_in_time(system: System, show: Show):
    buyer = await signed_in_buyer(system)
    started = time.monotonic()

    waited = await system.http.post(
        "/api/v1/orders", json=automatic(show), headers=buyer.auth | {"Prefer": "wait=1"}, timeout=30
    )

    # No allocator runs in this module: the request stays pending, and the call waited for it.
    assert waited.status_code == 202, waited.text
    assert waited.headers["preference-applied"] == "wait=1"
    assert time.monotonic() - started >= 0.9


async def test_orders_need_a_signed_in_user(system: System, show: Show):
    refused = await system.http.post("/api/v1/orders", json=automatic(show))

    assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHENTICATED")


async def _requested(system: System, order_number: int) -> OrderRequested:
    """The OrderRequested of this order, read back from the log."""
    consumer = AIOKafkaConsumer(
        system.settings.kafka.topic("order-requests"),
        bootstrap_servers=system.settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    event = payload_of(decode(message.value))
                    if isinstance(event, OrderRequested) and event.order_number == order_number:
                        return event
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    raise AssertionError(f"no OrderRequested for {order_number}")
