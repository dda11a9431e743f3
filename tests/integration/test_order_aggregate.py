"""The Order aggregate (aggregates/order.py): every transition and every refusal; replayed from its
envelopes — through the real log too — it equals the aggregate that decided; its snapshot round
trips, in memory and through Redis, where lua/order_release.lua saves it with the seats only
while it is still at the loaded version and the decision still held. Last, a real lifecycle meets
a cancel that reached the log before the order's hold, and ends the order after the hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import pytest_asyncio

from aggregates.base import Aggregate
from aggregates.errors import Conflict
from aggregates.order import NOT_DUE, Order, OrderStatus
from events.envelope import EventEnvelope
from events.order import (
    CancelRequested,
    HeldTicket,
    OrderCancelled,
    RejectionReason,
    SeatsReserved,
    order_key,
)
from events.program import RefundPolicy
from events.serialization import decode, encode, payload_of
from infra.kafka import EventPublisher, read_aggregate_events
from infra.redis import LuaScripts
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    available_seats,
    order_decision,
    order_snapshot,
    program_keys_pattern,
    remaining_counts,
)
from infra.settings import Settings
from projections.lifecycle import Lifecycle
from projections.seat_allocation import (
    DecisionStatus,
    Loaded,
    load_order,
    reserve,
    save_order,
)
from tests.integration.test_order_reserve import INNER, NOW_MS, SHOW, USER, lay_out, new_program_id, request
from tests.processes import eventually

NUMBER, PROGRAM = 7_000_000_000_001, 9_100_000_001
TTL_S = 600
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(minutes=15)
TICKETS = (
    HeldTicket(seat_id=70100001001, ticket_category_id=701, row=1, column=1, price=Decimal("80.00")),
    HeldTicket(seat_id=70100001002, ticket_category_id=701, row=1, column=2, price=Decimal("80.00")),
)

PAID_AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def held(number: int = NUMBER, program_id: int = PROGRAM, tickets: tuple[HeldTicket, ...] = TICKETS) -> Order:
    total = sum((t.price for t in tickets), Decimal("0"))
    return Order.hold(number, USER, program_id, SHOW, tickets, total, DEADLINE, NOW, hold_sequence=number)


def rejected() -> Order:
    return Order.reject(NUMBER, USER, PROGRAM, SHOW, RejectionReason.SOLD_OUT, NOW)


def ended(how: str) -> Order:
    """An order brought to ``how`` through its own commands."""
    if how == "rejected":
        return rejected()
    order = held()
    match how:
        case "paid":
            order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
        case "cancelled":
            order.cancel()
        case "expired":
            order.expire(DEADLINE)
    return order


def kinds(order: Order) -> list[tuple[str, int]]:
    return [(type(d.event).__name__, d.version) for d in order.outbox()]


def envelopes_of(*orders: Order) -> list[EventEnvelope]:
    return [
        EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at)
        for order in orders
        for d in order.outbox()
    ]


def same(a: Aggregate | None, b: Aggregate) -> bool:
    return a is not None and {**vars(a), "_pending_events": []} == {**vars(b), "_pending_events": []}


# -- transitions --------------------------------------------------------------------------------


def test_a_hold_makes_an_unpaid_order_with_its_tickets_and_deadline():
    order = held()

    assert (order.status, order.tickets, order.total_amount, order.pay_deadline) == (
        OrderStatus.UNPAID,
        TICKETS,
        Decimal("160.00"),
        DEADLINE,
    )
    assert kinds(order) == [("SeatsReserved", 1)]


def test_a_rejection_makes_a_rejected_order_with_its_reason():
    order = rejected()

    assert (order.status, order.reason) == (OrderStatus.REJECTED, RejectionReason.SOLD_OUT)
    assert kinds(order) == [("OrderRejected", 1)]


def test_an_unpaid_order_is_cancelled():
    order = held()
    order.cancel()

    assert order.status is OrderStatus.CANCELLED
    assert kinds(order) == [("SeatsReserved", 1), ("OrderCancelled", 2)]


def test_an_unpaid_order_expires_at_its_deadline():
    order = held()
    order.expire(DEADLINE)

    assert order.status is OrderStatus.EXPIRED
    assert kinds(order) == [("SeatsReserved", 1), ("OrderExpired", 2)]


def test_a_payment_sells_an_unpaid_order():
    order = held()
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)

    assert order.status is OrderStatus.PAID
    assert kinds(order) == [("SeatsReserved", 1), ("OrderPaid", 2)]


@pytest.mark.parametrize("how", ["cancelled", "expired", "rejected"])
def test_a_payment_after_the_end_is_recorded_for_refund_once_per_payment(how: str):
    order = ended(how)
    order.collect_events()

    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    order.confirm_payment("pay-2", Decimal("160.00"), PAID_AT)

    assert order.status is OrderStatus(how)
    refunds = [(type(d.event).__name__, d.version, d.event.payment_id) for d in order.outbox()]  # type: ignore[attr-defined]
    first = 3 if how != "rejected" else 2
    assert refunds == [("RefundRequired", first, "pay-1"), ("RefundRequired", first + 1, "pay-2")]


def test_the_payment_of_a_paid_order_again_changes_nothing_and_a_second_payment_goes_back():
    order = ended("paid")
    order.collect_events()

    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    assert (order.status, order.outbox()) == (OrderStatus.PAID, [])

    order.confirm_payment("pay-2", Decimal("160.00"), PAID_AT)
    order.confirm_refund("pay-2", "R1", Decimal("160.00"), PAID_AT)
    refunds = [(type(d.event).__name__, d.event.payment_id) for d in order.outbox()]  # type: ignore[attr-defined]
    assert (order.status, refunds) == (OrderStatus.PAID, [("RefundRequired", "pay-2"), ("OrderRefunded", "pay-2")])


# -- refunds ------------------------------------------------------------------------------------

SHOW_STARTS = NOW + timedelta(days=30)
REFUNDABLE = RefundPolicy(refundable=True, deadline_hours_before_show=48)


def test_a_paid_order_refunded_within_its_policy_is_refunded_at_once_then_confirmed_once():
    order = ended("paid")
    order.collect_events()

    order.request_refund(REFUNDABLE, SHOW_STARTS, NOW, by_admin=False)
    assert order.status is OrderStatus.REFUNDED
    order.confirm_refund("pay-1", "R1", Decimal("160.00"), PAID_AT)
    order.confirm_refund("pay-1", "R1", Decimal("160.00"), PAID_AT)

    assert kinds(order) == [("RefundRequired", 3), ("OrderRefunded", 4)]
    assert order.refunded_for("pay-1") is not None and order.ending() is not None
    assert type(order.ending().event).__name__ == "OrderPaid"  # type: ignore[union-attr]
    again = Order.from_snapshot(order.snapshot())
    assert again is not None and same(again, order)


@pytest.mark.parametrize(
    ("policy", "now"),
    [
        (RefundPolicy(refundable=False), NOW),
        (REFUNDABLE, SHOW_STARTS - timedelta(hours=47)),
    ],
)
def test_the_buyer_is_refused_outside_the_policy_and_an_admin_is_not(policy: RefundPolicy, now: datetime):
    order = ended("paid")
    order.collect_events()

    with pytest.raises(Conflict) as refused:
        order.request_refund(policy, SHOW_STARTS, now, by_admin=False)
    assert (refused.value.code, order.outbox()) == ("REFUND_NOT_ALLOWED", [])

    order.request_refund(policy, SHOW_STARTS, now, by_admin=True)
    assert order.status is OrderStatus.REFUNDED


@pytest.mark.parametrize("how", ["unpaid", "cancelled", "expired", "rejected"])
def test_only_a_paid_order_can_be_refunded(how: str):
    order = held() if how == "unpaid" else ended(how)
    order.collect_events()

    with pytest.raises(Conflict) as refused:
        order.request_refund(REFUNDABLE, SHOW_STARTS, NOW, by_admin=True)
    assert (refused.value.code, order.outbox()) == ("ORDER_NOT_REFUNDABLE", [])


@pytest.mark.parametrize("how", ["cancelled", "expired"])
def test_a_late_payment_given_back_ends_the_order_refunded(how: str):
    order = ended(how)
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    assert order.status is OrderStatus(how)
    order.collect_events()

    order.confirm_refund("pay-1", "R1", Decimal("160.00"), PAID_AT)

    assert order.status is OrderStatus.REFUNDED
    assert kinds(order) == [("OrderRefunded", 4)]
    with pytest.raises(Conflict):
        order.confirm_refund("pay-9", "R9", Decimal("1.00"), PAID_AT)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["paid", "cancelled", "expired", "rejected"])
def test_only_an_unpaid_order_is_cancelled(how: str):
    order = ended(how)
    order.collect_events()

    with pytest.raises(Conflict) as refused:
        order.cancel()

    assert (refused.value.code, refused.value.details) == ("ORDER_NOT_CANCELLABLE", {"status": how})
    assert order.outbox() == []


@pytest.mark.parametrize("how", ["paid", "cancelled", "expired", "rejected"])
def test_only_an_unpaid_order_expires(how: str):
    order = ended(how)
    order.collect_events()

    with pytest.raises(Conflict) as refused:
        order.expire(DEADLINE + timedelta(hours=1))

    assert (refused.value.code, order.status) == ("ORDER_NOT_EXPIRABLE", OrderStatus(how))
    assert order.outbox() == []


def test_an_order_does_not_expire_before_its_deadline():
    order = held()
    order.collect_events()

    with pytest.raises(Conflict) as refused:
        order.expire(DEADLINE - timedelta(milliseconds=1))

    assert (refused.value.code, order.status, order.outbox()) == (NOT_DUE, OrderStatus.UNPAID, [])


def test_an_ending_and_a_refund_are_said_again_as_first_decided():
    order = ended("cancelled")
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    first = {type(d.event).__name__: d for d in order.outbox()}

    assert order.ending() == first["OrderCancelled"]
    assert order.refund_for("pay-1") == first["RefundRequired"]
    assert (order.refund_for("pay-2"), held().ending()) == (None, None)


# -- replay and snapshots -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["paid", "cancelled", "expired", "rejected"])
def test_replaying_its_envelopes_gives_the_aggregate_that_decided(how: str):
    order = ended(how)
    order.confirm_payment("pay-9", Decimal("1.00"), PAID_AT)
    on_the_wire = [decode(encode(e)) for e in envelopes_of(order)]

    assert same(Order.from_log(on_the_wire), order)


def test_the_log_read_back_gives_the_aggregate_that_decided_whatever_else_shares_its_key():
    order = ended("cancelled")
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    decided = envelopes_of(order)
    cancel = CancelRequested(order_number=NUMBER, user_id=USER, program_id=PROGRAM)
    intent = EventEnvelope.wrap(cancel, aggregate_version=1)
    # An ending that reached the log before its hold (a cancel racing the allocator's append).
    out_of_order = [decided[1], intent, decided[0], decided[0], decided[2]]

    assert same(Order.from_log(out_of_order), order)


async def test_an_order_read_back_from_kafka_equals_the_one_that_decided(isolated: Settings, publisher: EventPublisher):
    order = ended("expired")
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    await publisher.append(envelopes_of(order), 10)

    partition = await publisher.partition_of(isolated.kafka.topic("order"), order_key(NUMBER))
    read = await read_aggregate_events(isolated.kafka, partition, order_key(NUMBER))

    assert same(Order.from_log(read), order)


@pytest.mark.parametrize("how", ["paid", "cancelled", "expired", "rejected"])
def test_a_snapshot_round_trips(how: str):
    order = ended(how)
    order.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    order.collect_events()

    assert same(Order.from_snapshot(order.snapshot()), order)


# -- saving with the seats, on the real Redis ---------------------------------------------------


@pytest.fixture(scope="session")
def scripts(redis) -> LuaScripts:
    return LuaScripts(redis)


@pytest_asyncio.fixture
async def program(redis) -> AsyncIterator[int]:
    """A program whose INNER category of SHOW has row 1 of 10 seats; its keys removed after."""
    program_id = new_program_id()
    async with redis.pipeline(transaction=False) as pipe:
        lay_out(pipe, program_id, SHOW, INNER, {1: range(1, 11)})
        await pipe.execute()
    yield program_id
    keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
    if keys:
        await redis.delete(*keys)


async def hold_in_redis(scripts: LuaScripts, program_id: int, number: int) -> Order:
    """The allocator's hold of 2 INNER seats (lua/order_reserve.lua), and its first snapshot saved."""
    [decision] = await reserve(scripts, program_id, [request(program_id, number)], NOW_MS, SEAT_ROW_STRIDE, TTL_S)
    assert decision.status is DecisionStatus.HELD and decision.total and decision.pay_deadline
    assert decision.hold_sequence is not None
    order = Order.hold(
        number,
        USER,
        program_id,
        SHOW,
        decision.tickets,
        decision.total,
        decision.pay_deadline,
        NOW,
        decision.hold_sequence,
    )
    saved = await save_order(scripts, order, None, SEAT_ROW_STRIDE, TTL_S)
    assert saved.changed
    return order


async def seats_on_sale(redis: Any, program_id: int) -> tuple[int, int]:
    available = await redis.zcard(available_seats(program_id, INNER))
    return available, int(await redis.hget(remaining_counts(program_id), str(INNER)))


async def test_a_saved_snapshot_loads_back_equal(redis, scripts, program: int):
    order = await hold_in_redis(scripts, program, 1)

    assert same(await load_order(redis, program, 1), order)
    assert await redis.ttl(order_snapshot(program, 1)) == -1  # held: kept while the seats are


async def test_saving_a_cancel_gives_the_seats_back_with_the_snapshot(redis, scripts, program: int):
    before = await seats_on_sale(redis, program)
    order = await hold_in_redis(scripts, program, 1)
    loaded = Loaded.of(order)
    order.cancel()

    saved = await save_order(scripts, order, loaded, SEAT_ROW_STRIDE, TTL_S)

    assert (saved.changed, saved.status) == (True, DecisionStatus.CANCELLED)
    assert await seats_on_sale(redis, program) == before
    assert same(await load_order(redis, program, 1), order)
    assert 0 < await redis.ttl(order_snapshot(program, 1)) <= TTL_S


async def test_of_a_cancel_and_an_expiry_decided_at_once_the_first_saved_wins(redis, scripts, program: int):
    before = await seats_on_sale(redis, program)
    await hold_in_redis(scripts, program, 1)
    cancelling, expiring = await load_order(redis, program, 1), await load_order(redis, program, 1)
    assert cancelling is not None and expiring is not None
    loaded = Loaded.of(cancelling)
    cancelling.cancel()
    expiring.expire(DEADLINE + timedelta(days=1))

    first = await save_order(scripts, cancelling, loaded, SEAT_ROW_STRIDE, TTL_S)
    second = await save_order(scripts, expiring, loaded, SEAT_ROW_STRIDE, TTL_S)

    assert (first.changed, second.changed, second.status) == (True, False, DecisionStatus.CANCELLED)
    assert await seats_on_sale(redis, program) == before  # given back once
    reloaded = await load_order(redis, program, 1)
    assert reloaded is not None and reloaded.status is OrderStatus.CANCELLED


async def test_an_ending_is_not_saved_when_the_decision_is_no_longer_held(redis, scripts, program: int):
    order = await hold_in_redis(scripts, program, 1)
    stored = orjson.loads(await redis.get(order_decision(program, 1)))
    await redis.set(order_decision(program, 1), orjson.dumps({**stored, "status": "sold"}))
    loaded = Loaded.of(order)
    order.cancel()

    saved = await save_order(scripts, order, loaded, SEAT_ROW_STRIDE, TTL_S)

    assert (saved.changed, saved.status) == (False, DecisionStatus.SOLD)
    reloaded = await load_order(redis, program, 1)
    assert reloaded is not None and reloaded.status is OrderStatus.UNPAID


async def test_a_payment_sells_the_seats_and_a_refund_after_the_end_touches_none(redis, scripts, program: int):
    paying, late = await hold_in_redis(scripts, program, 1), await hold_in_redis(scripts, program, 2)
    loaded = Loaded.of(late)
    late.cancel()
    await save_order(scripts, late, loaded, SEAT_ROW_STRIDE, TTL_S)
    after_cancel = await seats_on_sale(redis, program)

    loaded = Loaded.of(paying)
    paying.confirm_payment("pay-1", Decimal("160.00"), PAID_AT)
    sold = await save_order(scripts, paying, loaded, SEAT_ROW_STRIDE, TTL_S)
    loaded = Loaded.of(late)
    late.confirm_payment("pay-2", Decimal("160.00"), PAID_AT)
    refunded = await save_order(scripts, late, loaded, SEAT_ROW_STRIDE, TTL_S)

    assert (sold.status, refunded.status) == (DecisionStatus.SOLD, DecisionStatus.CANCELLED)
    assert await seats_on_sale(redis, program) == after_cancel
    assert await redis.ttl(order_decision(program, 1)) == -1
    reloaded = await load_order(redis, program, 2)
    assert reloaded is not None and set(reloaded.refunds) == {"pay-2"}


async def test_a_first_snapshot_saved_again_leaves_a_later_one(redis, scripts, program: int):
    order = await hold_in_redis(scripts, program, 1)
    loaded = Loaded.of(order)
    order.cancel()
    await save_order(scripts, order, loaded, SEAT_ROW_STRIDE, TTL_S)
    [redelivered] = envelopes_of(held(1, program, order.tickets))
    first = Order.from_log([redelivered])
    assert first is not None

    again = await save_order(scripts, first, None, SEAT_ROW_STRIDE, TTL_S)

    reloaded = await load_order(redis, program, 1)
    assert not again.changed and reloaded is not None and reloaded.status is OrderStatus.CANCELLED


# -- the lifecycle: a cancel that reached the log before the hold ---------------------------------


@pytest_asyncio.fixture
async def lifecycle(isolated: Settings, redis, scripts, publisher) -> AsyncIterator[Lifecycle]:
    running = Lifecycle(isolated, redis, scripts, publisher)
    task = asyncio.create_task(running.run())
    yield running
    running.stop()
    await asyncio.wait_for(task, 30)


async def test_a_cancel_that_reaches_the_log_before_the_hold_ends_the_order_after_it(
    isolated: Settings, redis, scripts, publisher: EventPublisher, lifecycle: Lifecycle, program: int
):
    program_id = program
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    [decision] = await reserve(scripts, program_id, [request(program_id, 1)], now_ms, SEAT_ROW_STRIDE, TTL_S)
    assert decision.total is not None and decision.pay_deadline is not None and decision.hold_sequence is not None
    cancel = CancelRequested(order_number=1, user_id=USER, program_id=program_id)
    hold = SeatsReserved(
        order_number=1,
        user_id=USER,
        program_id=program_id,
        show_time_id=SHOW,
        tickets=decision.tickets,
        total_amount=decision.total,
        pay_deadline=decision.pay_deadline,
        hold_sequence=decision.hold_sequence,
        requested_at=datetime.now(UTC),
    )
    await publisher.append([EventEnvelope.wrap(cancel, aggregate_version=1)], 10)

    async def waiting() -> bool:
        return bool([f async for f, _ in redis.hscan_iter(order_snapshot(program_id, 1), match="waiting:*")])

    await eventually(waiting, 30, "the cancel waiting for the order's hold")
    assert orjson.loads(await redis.get(order_decision(program_id, 1)))["status"] == "held"
    await publisher.append([EventEnvelope.wrap(hold, aggregate_version=1)], 10)

    async def cancelled() -> bool:
        order = await load_order(redis, program_id, 1)
        return order is not None and order.status is OrderStatus.CANCELLED

    await eventually(cancelled, 30, "the cancel after the hold")
    assert await redis.zcard(available_seats(program_id, INNER)) == 10
    partition = await publisher.partition_of(isolated.kafka.topic("order"), order_key(1))

    async def ended_in_the_log() -> bool:
        events = await read_aggregate_events(isolated.kafka, partition, order_key(1))
        return any(isinstance(payload_of(e), OrderCancelled) for e in events)

    await eventually(ended_in_the_log, 30, "OrderCancelled in the log")
    events = [payload_of(e) for e in await read_aggregate_events(isolated.kafka, partition, order_key(1))]
    facts = [type(e) for e in events if not isinstance(e, CancelRequested)]
    assert facts == [SeatsReserved, OrderCancelled]  # the hold first, then its ending
    assert not [f async for f, _ in redis.hscan_iter(order_snapshot(program_id, 1), match="waiting:*")]
