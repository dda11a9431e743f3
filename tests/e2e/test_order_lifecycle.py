"""An order after its hold, with a real allocator and a real lifecycle: cancelled by its buyer,
expired at its payment deadline (also across a lifecycle restart), paid; a cancel racing the expiry
ends it one way; a payment after the end asks for a refund."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import jwt
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from events.envelope import EventEnvelope
from events.order import OrderCancelled, OrderExpired, OrderPaid, PaymentConfirmed, RefundRequired
from events.serialization import decode, payload_of
from infra.kafka import EventPublisher
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import account_tickets, available_seats, remaining_counts, user_order
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
PAYMENT_WINDOW_S = 3
SEATS = 20


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def processors(system: System, tmp_path_factory) -> AsyncIterator[dict[str, Child]]:
    logs = tmp_path_factory.mktemp("processors")
    env = {"DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S)}
    children = {
        "allocator": Child(["cli.main", "allocator"], system.settings, logs / "allocator.log", env),
        "lifecycle": Child(["cli.main", "lifecycle"], system.settings, logs / "lifecycle.log", env),
    }
    yield children
    for child in children.values():
        child.stop()


@pytest_asyncio.fixture(scope="module")
async def publisher(system: System) -> AsyncIterator[EventPublisher]:
    publisher = EventPublisher(system.settings.kafka)
    await publisher.start()
    yield publisher
    await publisher.stop()


async def held(system: System, show: dict[str, Any], buyer: Buyer, count: int = 2) -> dict[str, Any]:
    response = await order(system, buyer, automatic(show, count))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def status_of(system: System, buyer: Buyer, order_number: str) -> str:
    response = await system.http.get(f"/api/v1/orders/{order_number}", headers=buyer.auth)
    status: str = response.json()["status"]
    return status


async def on_sale_now(system: System, catalogue: ShardedDatabase) -> dict[str, Any]:
    return await on_sale(system, catalogue, rows=2, columns=SEATS // 2, perAccountLimit=20, perOrderLimit=6)


async def test_a_buyer_cancels_an_unpaid_order_and_its_seats_are_back_on_sale(
    system: System, catalogue: ShardedDatabase, processors, redis
):
    show = await on_sale_now(system, catalogue)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    placed = await held(system, show, buyer)
    path = f"/api/v1/orders/{placed['orderNumber']}/cancel"

    not_theirs = await system.http.post(path, headers=other.auth)
    cancelled = await system.http.post(path, headers=buyer.auth)
    again = await system.http.post(path, headers=buyer.auth)

    assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (again.status_code, again.json()["code"]) == (409, "ORDER_NOT_CANCELLABLE")
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS
    assert int(await redis.hget(remaining_counts(show["program"]), str(show["category"]))) == SEATS
    assert not await redis.exists(account_tickets(show["program"], _user_of(buyer)))
    assert await _ending(system, int(placed["orderNumber"])) == [OrderCancelled]


async def test_an_unpaid_order_expires_at_its_deadline_and_a_late_cancel_loses(
    system: System, catalogue: ShardedDatabase, processors, redis
):
    show = await on_sale_now(system, catalogue)
    buyer = await signed_in_buyer(system)
    placed = await held(system, show, buyer, count=3)
    deadline = datetime.fromisoformat(placed["payDeadline"])

    await eventually(lambda: _is(system, buyer, placed["orderNumber"], "expired"), PAYMENT_WINDOW_S + 5, "expiry")
    late_by_s = (datetime.now(UTC) - deadline).total_seconds()
    cancel = await system.http.post(f"/api/v1/orders/{placed['orderNumber']}/cancel", headers=buyer.auth)

    assert late_by_s < 2.0, f"expired {late_by_s:.2f} s after the deadline"
    assert (cancel.status_code, cancel.json()["code"]) == (409, "ORDER_NOT_CANCELLABLE")
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS
    assert await _ending(system, int(placed["orderNumber"])) == [OrderExpired]


async def test_a_cancel_racing_the_expiry_ends_the_order_one_way_and_frees_its_seats_once(
    system: System, catalogue: ShardedDatabase, processors, redis
):
    show = await on_sale_now(system, catalogue)
    buyer = await signed_in_buyer(system)
    placed = [await held(system, show, buyer, count=2) for _ in range(4)]
    deadline = datetime.fromisoformat(placed[-1]["payDeadline"])
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds() - 0.05))

    answers = await asyncio.gather(
        *(system.http.post(f"/api/v1/orders/{p['orderNumber']}/cancel", headers=buyer.auth) for p in placed)
    )

    for p in placed:
        number: str = p["orderNumber"]
        await eventually(partial(_ended, system, buyer, number), PAYMENT_WINDOW_S + 5, "the ending")
    assert {a.status_code for a in answers} <= {200, 202, 409}
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS
    assert int(await redis.hget(remaining_counts(show["program"]), str(show["category"]))) == SEATS
    for p in placed:
        endings = await _ending(system, int(p["orderNumber"]))
        assert endings in ([OrderCancelled], [OrderExpired]), endings


async def test_a_confirmed_payment_sells_the_seats_and_one_after_the_end_asks_for_a_refund(
    system: System, catalogue: ShardedDatabase, processors, publisher: EventPublisher, redis
):
    show = await on_sale_now(system, catalogue)
    buyer = await signed_in_buyer(system)
    paying = await held(system, show, buyer)
    late = await held(system, show, buyer)
    await system.http.post(f"/api/v1/orders/{late['orderNumber']}/cancel", headers=buyer.auth)

    for placed in (paying, late):
        await _confirm_payment(publisher, show, placed, buyer)

    await eventually(lambda: _is(system, buyer, paying["orderNumber"], "paid"), 10, "the paid order")
    assert await _ending(system, int(paying["orderNumber"])) == [OrderPaid]
    await eventually(lambda: _has(system, int(late["orderNumber"]), RefundRequired), 10, "the refund")
    await asyncio.sleep(PAYMENT_WINDOW_S + 1)  # a paid order does not expire
    assert await status_of(system, buyer, paying["orderNumber"]) == "paid"
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS - 2


async def test_expiry_survives_a_lifecycle_restart(
    system: System, catalogue: ShardedDatabase, processors: dict[str, Child], tmp_path
):
    show = await on_sale_now(system, catalogue)
    buyer = await signed_in_buyer(system)
    processors["lifecycle"].stop()
    placed = await held(system, show, buyer)
    await asyncio.sleep(PAYMENT_WINDOW_S + 1)
    assert await status_of(system, buyer, placed["orderNumber"]) == "unpaid"

    processors["lifecycle"] = Child(
        ["cli.main", "lifecycle"],
        system.settings,
        tmp_path / "lifecycle.log",
        {"DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S)},
    )
    started = time.monotonic()
    await eventually(lambda: _is(system, buyer, placed["orderNumber"], "expired"), 30, "expiry after the restart")
    print(f"expired {time.monotonic() - started:.1f} s after the lifecycle restarted")


async def _is(system: System, buyer: Buyer, order_number: str, status: str) -> bool:
    return await status_of(system, buyer, order_number) == status


async def _ended(system: System, buyer: Buyer, order_number: str) -> bool:
    return await status_of(system, buyer, order_number) in ("cancelled", "expired")


async def _confirm_payment(
    publisher: EventPublisher, show: dict[str, Any], placed: dict[str, Any], buyer: Buyer
) -> None:
    """What the payments issue's notification handler will append; appended here directly."""
    confirmed = PaymentConfirmed(
        order_number=int(placed["orderNumber"]),
        user_id=_user_of(buyer),
        program_id=show["program"],
        payment_id=f"pay-{placed['orderNumber']}",
        amount=Decimal(placed["totalAmount"]),
        paid_at=datetime.now(UTC),
    )
    await publisher.append([EventEnvelope.wrap(confirmed, aggregate_version=1)], 10)


def _user_of(buyer: Buyer) -> int:
    token = buyer.auth["Authorization"].split()[1]
    return int(jwt.decode(token, options={"verify_signature": False})["sub"])


async def _events_of(system: System, order_number: int) -> list[object]:
    consumer = AIOKafkaConsumer(
        system.settings.kafka.topic("order"),
        bootstrap_servers=system.settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[object] = []
        while True:
            fetched = await consumer.getmany(timeout_ms=500)
            if not fetched:
                return found
            for messages in fetched.values():
                for message in messages:
                    if message.key == f"order-{order_number}".encode():
                        found.append(payload_of(decode(message.value)))
    finally:
        await consumer.stop()


async def _ending(system: System, order_number: int) -> list[type]:
    """The kinds of ending the log holds for the order (each once, whatever was appended twice)."""
    kinds = {type(e) for e in await _events_of(system, order_number)}
    return sorted(kinds & {OrderCancelled, OrderExpired, OrderPaid}, key=lambda k: k.__name__)


async def _has(system: System, order_number: int, kind: type) -> bool:
    return any(isinstance(e, kind) for e in await _events_of(system, order_number))


async def test_a_buyer_lists_their_orders_newest_first_and_reads_old_ones_from_postgres(
    system: System, catalogue: ShardedDatabase, processors, redis
):
    show = await on_sale_now(system, catalogue)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    first = await held(system, show, buyer, count=1)
    second = await held(system, show, buyer, count=2)
    await system.http.post(f"/api/v1/orders/{first['orderNumber']}/cancel", headers=buyer.auth)

    async def listed() -> bool:
        page = (await system.http.get("/api/v1/orders", headers=buyer.auth)).json()
        return [(o["orderNumber"], o["status"]) for o in page["items"]] == [
            (second["orderNumber"], "unpaid"),
            (first["orderNumber"], "cancelled"),
        ]

    await eventually(listed, 30, "both orders in the buyer's list")
    unpaid = (await system.http.get("/api/v1/orders?status=unpaid&size=1", headers=buyer.auth)).json()
    assert unpaid["total"] == 1 and unpaid["items"][0]["orderNumber"] == second["orderNumber"]
    assert len(unpaid["items"][0]["tickets"]) == 2
    assert (await system.http.get("/api/v1/orders", headers=other.auth)).json()["items"] == []
    bad = await system.http.get("/api/v1/orders?size=51", headers=buyer.auth)
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_FAILED")
    # Once Redis no longer has the order (its view's time is up), its shard answers.
    await redis.delete(user_order(system.settings.orders.key_prefix, _user_of(buyer), int(first["orderNumber"])))
    old = await system.http.get(f"/api/v1/orders/{first['orderNumber']}", headers=buyer.auth)
    assert old.status_code == 200 and old.json()["status"] == "cancelled" and len(old.json()["tickets"]) == 1
    assert (await system.http.get(f"/api/v1/orders/{first['orderNumber']}", headers=other.auth)).status_code == 404
