"""`damai verify orders`: a program's orders checked across Redis and Postgres, on a state the real
projectors and scripts built, then broken one way at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest_asyncio

from events.envelope import EventEnvelope
from events.order import OrderCancelled, OrderPaid, OrderRequested, OrderRules, SeatsReserved
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    account_tickets,
    order_decision,
    program_keys_pattern,
    projector_offsets,
    remaining_counts,
)
from projections.batch import Delivered, Positioned
from projections.inventory_projector import InventoryProjector
from projections.order_projector import OrderProjector
from projections.program_projector import ProgramProjector
from projections.seat_allocation import Decision, Ending, epoch_ms, finish, reserve
from projections.verify import verify_program_orders
from queries.views import programs
from tests.integration.test_program_projector import _batch, _events

USER, OTHER_USER = 5001, 5002
HELD, CHOSEN, CANCELLED, SOLD = 1001, 1002, 1003, 1004  # order numbers
TTL_S = 600
RULES = OrderRules(per_account_limit=6, real_name_required=False, payment_minutes=15, seat_selectable=True)


@dataclass(frozen=True)
class Placed:
    db: ShardedDatabase
    program_id: int
    inner: int
    held: Decision


def _request(program_id: int, show_time_id: int, order_number: int, user_id: int, **kind: object) -> OrderRequested:
    return OrderRequested.model_validate(
        {
            "order_number": order_number,
            "user_id": user_id,
            "program_id": program_id,
            "show_time_id": show_time_id,
            "rules": RULES,
            "deadline": datetime.now(UTC) + timedelta(minutes=1),
        }
        | kind
    )


def _reserved(request: OrderRequested, decision: Decision) -> SeatsReserved:
    assert decision.total is not None and decision.pay_deadline is not None and decision.hold_sequence is not None
    return SeatsReserved(
        order_number=request.order_number,
        user_id=request.user_id,
        program_id=request.program_id,
        show_time_id=request.show_time_id,
        tickets=decision.tickets,
        total_amount=decision.total,
        pay_deadline=decision.pay_deadline,
        hold_sequence=decision.hold_sequence,
        requested_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture
async def placed(isolated, pools, redis, es, area_code) -> AsyncIterator[Placed]:
    """A program projected into Postgres and the Redis inventory, with four orders decided by the
    scripts and projected into Postgres: two held, one cancelled, one sold (three live)."""
    layout = shard_layout(isolated)
    events = _events(area_code * 100_000)
    program_id = events[0].program_id
    batch = _batch(isolated.kafka.topic("program"), events)
    await ProgramProjector("test.program", pools, layout, redis, isolated, es).apply(batch)
    scripts = LuaScripts(redis)
    await InventoryProjector("test.inventory", redis, scripts).apply(batch)
    db = ShardedDatabase(pools, layout)
    inner, stand = sorted(await programs.ticket_categories_of(db, program_id), key=lambda c: c.name != "内场")
    [stand_seat, *_] = await programs.seats_of(db, program_id, stand.id)
    show = inner.show_time_id
    requests = [
        _request(program_id, show, HELD, USER, ticket_category_id=inner.id, count=2),
        _request(program_id, show, CHOSEN, OTHER_USER, seats=[{"seat_id": stand_seat.id, "price": stand.price}]),
        _request(program_id, show, CANCELLED, USER, ticket_category_id=inner.id, count=1),
        _request(program_id, show, SOLD, OTHER_USER, ticket_category_id=inner.id, count=3),
    ]
    now_ms = epoch_ms(datetime.now(UTC))
    decisions = await reserve(scripts, program_id, requests, now_ms, SEAT_ROW_STRIDE, TTL_S)
    await finish(scripts, program_id, CANCELLED, Ending.CANCELLED, SEAT_ROW_STRIDE, TTL_S)
    await finish(scripts, program_id, SOLD, Ending.SOLD, SEAT_ROW_STRIDE, TTL_S)
    order_events = [
        *(EventEnvelope.wrap(_reserved(r, d), aggregate_version=1) for r, d in zip(requests, decisions, strict=True)),
        EventEnvelope.wrap(
            OrderCancelled(order_number=CANCELLED, user_id=USER, program_id=program_id), aggregate_version=2
        ),
        EventEnvelope.wrap(
            OrderPaid(order_number=SOLD, user_id=OTHER_USER, program_id=program_id), aggregate_version=2
        ),
    ]
    await OrderProjector("test.order", pools, layout).apply(
        [Positioned(Delivered("order", 0, i), e) for i, e in enumerate(order_events)]
    )
    yield Placed(db, program_id, inner.id, decisions[0])
    keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
    if keys:
        await redis.delete(*keys)
    await redis.delete(projector_offsets("test.inventory"))


async def differences(placed: Placed, redis) -> list[str]:
    return [d.what for d in (await verify_program_orders(placed.db, redis, placed.program_id)).differences]


async def test_orders_decided_by_the_scripts_and_projected_agree(placed, redis):
    report = await verify_program_orders(placed.db, redis, placed.program_id)

    assert report.differences == ()
    assert (report.live_orders, report.live_tickets, report.awaiting_projection) == (3, 6, 0)


async def test_a_seat_in_two_live_decisions_is_reported(placed, redis):
    copy = (await redis.get(order_decision(placed.program_id, HELD))).replace(str(HELD).encode(), b"1099")
    await redis.set(order_decision(placed.program_id, 1099), copy)
    await redis.incrby(account_tickets(placed.program_id, USER), 2)

    found = await differences(placed, redis)

    seat = min(t.seat_id for t in placed.held.tickets if t.seat_id is not None)
    assert f"seat {seat} in 2 live orders: {HELD}, 1099" in found
    assert f"ticket category {placed.inner}: remaining 2395 in Redis, layout 2400 - held 4 - sold 3 = 2393" in found


async def test_a_remaining_count_off_by_one_is_reported(placed, redis):
    await redis.hincrby(remaining_counts(placed.program_id), str(placed.inner), 1)

    found = await differences(placed, redis)

    assert found == [f"ticket category {placed.inner}: remaining 2396 in Redis, layout 2400 - held 2 - sold 3 = 2395"]


async def test_an_account_total_off_is_reported(placed, redis):
    await redis.incrby(account_tickets(placed.program_id, USER), 1)

    found = await differences(placed, redis)

    assert found == [f"user {USER}: account 3 in Redis, 2 tickets in live orders"]


async def test_a_seat_row_not_locked_for_its_held_order_is_reported(placed, redis):
    seat = min(t.seat_id for t in placed.held.tickets if t.seat_id is not None)
    shard = placed.db.layout.program_family("seat", placed.program_id)
    await placed.db.pools[shard.database].execute(
        f"UPDATE {shard.table} SET status = 'available' WHERE program_id = $1 AND id = $2", placed.program_id, seat
    )

    found = await differences(placed, redis)

    assert found == [
        f"order {HELD} (held in Redis): 1 seat rows of another status in Postgres,"
        f" e.g. seat {seat} not taken, expected locked"
    ]
