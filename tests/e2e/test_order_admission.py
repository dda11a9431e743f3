"""What lets an order request into the log: the per-user order rate limit (429, counted with the
Idempotency-Key and the order index in one Redis call), and the sold-out flag (409 before any I/O,
except for a request with a key, which may be the retry of one accepted before the sell-out)."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from events.order import OrderRequested
from events.serialization import decode, payload_of
from infra.redis_keys import remaining_counts
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_order_requests import Buyer, Show, automatic, redis_module, show, signed_in_buyer

pytestmark = pytest.mark.slow

__all__ = ["redis_module", "show"]  # module fixtures shared with test_order_requests

ORDER_LIMIT = 3


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env(DAMAI_RATE_LIMITS__ORDER_LIMIT=str(ORDER_LIMIT), DAMAI_RATE_LIMITS__ORDER_WINDOW_MS="60000")


async def test_a_user_over_the_order_limit_is_refused_and_nothing_is_appended(system: System, show: Show):
    buyer, neighbour = await signed_in_buyer(system), await signed_in_buyer(system)

    answers = [await system.http.post("/api/v1/orders", json=automatic(show), headers=buyer.auth) for _ in range(5)]
    keyed = await system.http.post(
        "/api/v1/orders", json=automatic(show), headers=buyer.auth | {"Idempotency-Key": f"k-{time.time_ns()}"}
    )
    other = await system.http.post("/api/v1/orders", json=automatic(show), headers=neighbour.auth)

    assert [a.status_code for a in answers] == [202] * ORDER_LIMIT + [429, 429], [a.text for a in answers]
    refused = answers[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.json()["details"] == {"limit": ORDER_LIMIT, "windowMs": 60000}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (keyed.status_code, keyed.json()["code"]) == (429, "RATE_LIMITED")
    assert other.status_code == 202, "the limit is per user"
    accepted = {int(a.json()["orderNumber"]) for a in answers[:ORDER_LIMIT]}
    assert await _requests_of(system, _user_id(buyer), count=ORDER_LIMIT) == accepted


async def test_a_sold_out_category_is_refused_before_the_log_but_a_retried_request_gets_its_order(
    system: System, show: Show, redis_module: Redis
):
    buyer = await signed_in_buyer(system)
    stand = automatic(show, count=1, ticketCategoryId=str(show.stand))
    key = {"Idempotency-Key": f"checkout-{time.time_ns()}"}
    await redis_module.hset(remaining_counts(show.program_id), str(show.stand), 5)
    await asyncio.sleep(1.2)  # the flag is at most a second old
    first = await system.http.post("/api/v1/orders", json=stand, headers=buyer.auth | key)
    assert first.status_code == 202, first.text

    await redis_module.hset(remaining_counts(show.program_id), str(show.stand), 0)
    await asyncio.sleep(1.2)

    sold_out = [await system.http.post("/api/v1/orders", json=stand, headers=buyer.auth) for _ in range(5)]
    unsigned = await system.http.post("/api/v1/orders", json=stand)
    too_many = await system.http.post("/api/v1/orders", json=stand | {"count": 5}, headers=buyer.auth)
    stranger = await system.http.post("/api/v1/orders", json=stand | {"userId": "1"}, headers=buyer.auth)
    retried = await system.http.post("/api/v1/orders", json=stand, headers=buyer.auth | key)
    anew = await system.http.post(
        "/api/v1/orders", json=stand, headers=buyer.auth | {"Idempotency-Key": f"other-{time.time_ns()}"}
    )

    # Turned away before the rate limit counts: five of them, and the user can still order.
    assert [(a.status_code, a.json()["code"]) for a in sold_out] == [(409, "SOLD_OUT")] * 5
    # Whatever else is wrong with a request is answered as ever, sold out or not.
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "UNAUTHENTICATED")
    assert (too_many.status_code, too_many.json()["code"]) == (422, "PER_ORDER_LIMIT")
    assert (stranger.status_code, stranger.json()["code"]) == (422, "VALIDATION_FAILED")
    assert (retried.status_code, retried.json()["orderNumber"]) == (202, first.json()["orderNumber"])
    assert (anew.status_code, anew.json()["code"]) == (409, "SOLD_OUT")
    assert anew.json()["details"] == {"ticketCategoryId": str(show.stand)}


def _user_id(buyer: Buyer) -> int:
    token = buyer.auth["Authorization"].removeprefix("Bearer ")
    return int(jwt.decode(token, options={"verify_signature": False})["sub"])


async def _requests_of(system: System, user_id: int, count: int) -> set[int]:
    """The order numbers of every OrderRequested of this user in the log, read until ``count`` are
    found and then a second more (so one too many would be seen)."""
    consumer = AIOKafkaConsumer(
        system.settings.kafka.topic("order-requests"),
        bootstrap_servers=system.settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: set[int] = set()
    try:
        deadline = time.monotonic() + 10
        quiet_until: float | None = None
        while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    event = payload_of(decode(message.value))
                    if isinstance(event, OrderRequested) and event.user_id == user_id:
                        found.add(event.order_number)
            if len(found) >= count and quiet_until is None:
                quiet_until = time.monotonic() + 1
    finally:
        await consumer.stop()
    return found
