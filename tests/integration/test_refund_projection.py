"""Payments and refunds in the read side against real Postgres shards, called in-process: the
payment projector's bill rows, and the order projector's refunds — a paid order refunded at once
with its seats back on sale, a payment after a cancel given back and then refunded — in any
interleaving of the two topics, applied again or appended twice.

The program and its seats are projected first from real catalogue events, as in
``test_order_projector.py``, whose fixtures and helpers these tests share.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest_asyncio

from events.envelope import EventEnvelope, derived_event_id
from events.order import OrderCancelled, OrderEvent, OrderPaid, OrderRefunded, RefundRequired, SeatsReserved
from events.payment import PayBillCreated, PaymentEvent, PaymentNotified, PaymentSource, RefundFailed, RefundSucceeded
from infra.postgres.sharded import ShardedDatabase
from projections.batch import Delivered, Positioned
from projections.order_projector import OrderProjector
from projections.payment_projector import PaymentProjector
from queries.views.orders import (
    OrderStatus,
    PayBillRow,
    PayBillStatus,
    RefundBillRow,
    RefundReason,
    RefundStatus,
    load_order,
    pay_bills_of_orders,
    refunds_of_orders,
)
from tests.integration import test_order_projector as order_projector_tests
from tests.integration.test_order_projector import NOW, Venue, _reserved, _seat_states, _user_ids

# The program of twenty seats and the order projector of test_order_projector.py, as fixtures here.
venue = order_projector_tests.venue
projected = order_projector_tests.projected
PAID_AT = NOW + timedelta(minutes=3)
_bill_ids = itertools.count(8_100_000_000_000)


class Log:
    """Hands out offsets on one partition of a topic; each event at the version given."""

    def __init__(self, topic: str):
        self.topic = topic
        self._offsets = itertools.count()

    def at(self, *versioned: tuple[int, OrderEvent | PaymentEvent]) -> list[Positioned[EventEnvelope]]:
        return [
            Positioned(
                Delivered(self.topic, 0, next(self._offsets)),
                EventEnvelope.wrap(
                    e,
                    aggregate_version=v,
                    event_id=derived_event_id(e.order_number, e.event_type, str(v)),
                    occurred_at=NOW + timedelta(minutes=v),
                ),
            )
            for v, e in versioned
        ]

    def again(self, records: list[Positioned[EventEnvelope]]) -> list[Positioned[EventEnvelope]]:
        """The same envelopes at new offsets: appended twice."""
        return [Positioned(Delivered(self.topic, 0, next(self._offsets)), r.item) for r in records]


class Projected:
    def __init__(self, orders: OrderProjector, payments: PaymentProjector, db: ShardedDatabase, topic: str):
        self.orders, self.payments, self.db = orders, payments, db
        self.order_log, self.payment_log = Log(topic), Log(topic.replace("order", "payment"))

    async def order(self, *versioned: tuple[int, OrderEvent]) -> None:
        await self.orders.apply(self.order_log.at(*versioned))

    async def payment(self, *versioned: tuple[int, PaymentEvent]) -> None:
        await self.payments.apply(self.payment_log.at(*versioned))


@pytest_asyncio.fixture
async def both(isolated, projected) -> Projected:
    orders, db, log = projected
    payments = PaymentProjector(f"{isolated.worker.projector_group}.payment", db.pools, db.layout)
    return Projected(orders, payments, db, log.topic)


def _ids(reserved: SeatsReserved) -> dict[str, int]:
    return {"order_number": reserved.order_number, "user_id": reserved.user_id, "program_id": reserved.program_id}


def _paid(reserved: SeatsReserved, trade: str) -> OrderPaid:
    return OrderPaid(**_ids(reserved), payment_id=trade, amount=reserved.total_amount, paid_at=PAID_AT)


def _refund_required(reserved: SeatsReserved, trade: str) -> RefundRequired:
    return RefundRequired(**_ids(reserved), payment_id=trade, amount=reserved.total_amount)


def _order_refunded(reserved: SeatsReserved, trade: str, number: str) -> OrderRefunded:
    return OrderRefunded(
        **_ids(reserved), payment_id=trade, refund_number=number, amount=reserved.total_amount, refunded_at=PAID_AT
    )


class Bill:
    """The pay bill events of one order, as the PayBill aggregate records them."""

    def __init__(self, reserved: SeatsReserved):
        self.reserved = reserved
        self.id = next(_bill_ids)

    @property
    def _of(self) -> dict[str, int]:
        return {"order_number": self.reserved.order_number, "pay_bill_id": self.id}

    def created(self) -> PayBillCreated:
        r = self.reserved
        return PayBillCreated(
            **self._of, user_id=r.user_id, program_id=r.program_id, channel="alipay", amount=r.total_amount
        )

    def notified(self, trade: str) -> PaymentNotified:
        r = self.reserved
        return PaymentNotified(
            **self._of,
            user_id=r.user_id,
            program_id=r.program_id,
            channel="alipay",
            trade_no=trade,
            amount=r.total_amount,
            paid_at=PAID_AT,
            source=PaymentSource.NOTIFY,
        )

    def failed(self, trade: str, number: str, attempt: int) -> RefundFailed:
        return RefundFailed(
            **self._of,
            trade_no=trade,
            refund_number=number,
            amount=self.reserved.total_amount,
            attempt=attempt,
            error="40004 ACQ.SYSTEM_ERROR",
            retry_at=PAID_AT + timedelta(seconds=attempt),
        )

    def succeeded(self, trade: str, number: str) -> RefundSucceeded:
        return RefundSucceeded(
            **self._of,
            trade_no=trade,
            refund_number=number,
            amount=self.reserved.total_amount,
            refunded_at=PAID_AT + timedelta(minutes=1),
        )


async def _hold(both: Projected, venue: Venue, seats: slice) -> SeatsReserved:
    reserved = _reserved(both.db, venue, next(_user_ids), venue.laid_out.seats[seats])
    await both.order((1, reserved))
    return reserved


async def _refunds(db: ShardedDatabase, order_number: int) -> list[tuple[object, ...]]:
    return [
        (r.trade_no, r.status, r.reason, r.refund_number, r.attempts)
        for r in (await refunds_of_orders(db, [order_number])).get(order_number, [])
    ]


# -- the order projector: refunds of orders ----------------------------------------------------------


async def test_a_paid_orders_refund_refunds_it_at_once_and_its_seats_are_available_again(both, venue):
    reserved = await _hold(both, venue, slice(0, 2))
    await both.order((2, _paid(reserved, "T1")))

    await both.order((3, _refund_required(reserved, "T1")))

    order = await load_order(both.db, reserved.order_number)
    assert order is not None and (order.status, order.closed_at) == (OrderStatus.REFUNDED, NOW + timedelta(minutes=3))
    states = await _seat_states(both.db, venue.program_id)
    assert {states[s.seat_id] for s in venue.laid_out.seats[:2]} == {("available", reserved.order_number)}
    assert await _refunds(both.db, reserved.order_number) == [
        ("T1", RefundStatus.REQUESTED, RefundReason.ORDER_REFUNDED, None, 0)
    ]


async def test_a_paid_order_refunded_in_the_batch_that_paid_it_is_refunded(both, venue):
    reserved = _reserved(both.db, venue, next(_user_ids), venue.laid_out.seats[2:3])

    await both.order((1, reserved), (2, _paid(reserved, "T1")), (3, _refund_required(reserved, "T1")))

    assert (await load_order(both.db, reserved.order_number)).status is OrderStatus.REFUNDED  # type: ignore[union-attr]
    assert (await _seat_states(both.db, venue.program_id))[venue.laid_out.seats[2].seat_id][0] == "available"


async def test_a_second_payments_refund_leaves_the_paid_order_and_its_seats_sold(both, venue):
    reserved = await _hold(both, venue, slice(3, 4))
    await both.order((2, _paid(reserved, "T1")))

    await both.order((3, _refund_required(reserved, "T2")), (4, _order_refunded(reserved, "T2", "R-2")))

    assert (await load_order(both.db, reserved.order_number)).status is OrderStatus.PAID  # type: ignore[union-attr]
    assert (await _seat_states(both.db, venue.program_id))[venue.laid_out.seats[3].seat_id][0] == "sold"
    assert await _refunds(both.db, reserved.order_number) == [
        ("T2", RefundStatus.REFUNDED, RefundReason.PAYMENT_NOT_NEEDED, "R-2", 0)
    ]


async def test_a_payment_after_a_cancel_is_requested_back_then_the_order_reads_refunded(both, venue):
    reserved = await _hold(both, venue, slice(4, 5))
    await both.order((2, OrderCancelled(**_ids(reserved))))

    await both.order((3, _refund_required(reserved, "T9")))
    requested = await load_order(both.db, reserved.order_number)
    await both.order((4, _order_refunded(reserved, "T9", "R-9")))

    assert requested is not None and requested.status is OrderStatus.CANCELLED
    assert (await load_order(both.db, reserved.order_number)).status is OrderStatus.REFUNDED  # type: ignore[union-attr]
    assert (await _seat_states(both.db, venue.program_id))[venue.laid_out.seats[4].seat_id] == (
        "available",
        reserved.order_number,
    )
    assert await _refunds(both.db, reserved.order_number) == [
        ("T9", RefundStatus.REFUNDED, RefundReason.PAYMENT_NOT_NEEDED, "R-9", 0)
    ]


async def test_a_refunded_seat_ends_with_the_next_hold_whatever_the_interleaving(both, venue):
    """A pays for the seat and has it refunded; B then holds it. A's events and B's are in different
    partitions: every interleaving that keeps A's in order leaves the seat locked to B."""
    seats = venue.laid_out.seats[5:9]
    holders = {}
    for seat, b_at in zip(seats, range(4), strict=True):
        first = _reserved(both.db, venue, next(_user_ids), [seat])
        then = _reserved(both.db, venue, next(_user_ids), [seat])
        steps: list[tuple[int, OrderEvent]] = [
            (1, first),
            (2, _paid(first, "T1")),
            (3, _refund_required(first, "T1")),
        ]
        steps.insert(b_at, (1, then))
        for step in steps:
            await both.order(step)
        holders[seat.seat_id] = then.order_number

    states = await _seat_states(both.db, venue.program_id)
    assert {seat: states[seat] for seat in holders} == {seat: ("locked", n) for seat, n in holders.items()}


async def test_refunds_applied_again_or_appended_twice_change_nothing(both, venue):
    reserved = await _hold(both, venue, slice(9, 11))
    batch = both.order_log.at(
        (2, _paid(reserved, "T1")), (3, _refund_required(reserved, "T1")), (4, _order_refunded(reserved, "T1", "R-1"))
    )
    await both.orders.apply(batch)

    async def rows() -> tuple[object, ...]:
        return (
            await load_order(both.db, reserved.order_number),
            await refunds_of_orders(both.db, [reserved.order_number]),
            await _seat_states(both.db, venue.program_id),
        )

    before = await rows()

    await both.orders.apply(batch)
    await both.orders.apply(both.order_log.again(batch))

    assert await rows() == before


# -- the payment projector: bills ---------------------------------------------------------------------


async def test_a_bill_is_created_then_paid_by_its_first_trade_in_the_orders_bill_table(both, venue):
    bill = Bill(await _hold(both, venue, slice(11, 12)))
    n = bill.reserved.order_number

    await both.payment((1, bill.created()))
    created = (await pay_bills_of_orders(both.db, [n]))[n]
    await both.payment((2, bill.notified("T1")), (3, bill.notified("T2")))

    paid = (await pay_bills_of_orders(both.db, [n]))[n]
    assert (created.id, created.status, created.amount, created.trade_number) == (
        bill.id,
        PayBillStatus.CREATED,
        bill.reserved.total_amount,
        None,
    )
    assert (paid.status, paid.trade_number, paid.paid_at, paid.paid_amount) == (
        PayBillStatus.PAID,
        "T1",
        PAID_AT,
        2 * bill.reserved.total_amount,
    )
    holding = [
        shard
        for family in ("pay_bill",)
        for shard in both.db.layout.physical_tables(family)
        if await both.db.fetchval(shard, "SELECT count(*) FROM {table} WHERE order_number = $1", n)
    ]
    assert holding == [both.db.layout.pay_bill(n)]


async def test_failed_refund_attempts_show_until_one_succeeds_and_the_bill_reads_refunded(both, venue):
    bill = Bill(await _hold(both, venue, slice(12, 13)))
    n = bill.reserved.order_number
    await both.payment((1, bill.created()), (2, bill.notified("T1")))
    await both.order((3, _refund_required(bill.reserved, "T1")))

    await both.payment((3, bill.failed("T1", f"{n}-R3", 1)), (4, bill.failed("T1", f"{n}-R3", 2)))
    [failed] = (await refunds_of_orders(both.db, [n]))[n]
    await both.payment((5, bill.succeeded("T1", f"{n}-R3")))

    [refunded] = (await refunds_of_orders(both.db, [n]))[n]
    assert (failed.status, failed.attempts, failed.last_error, failed.retry_at, failed.pay_bill_id) == (
        RefundStatus.FAILED,
        2,
        "40004 ACQ.SYSTEM_ERROR",
        PAID_AT + timedelta(seconds=2),
        bill.id,
    )
    assert (refunded.status, refunded.attempts, refunded.retry_at, refunded.refund_number) == (
        RefundStatus.REFUNDED,
        3,
        None,
        f"{n}-R3",
    )
    assert refunded.created_at == NOW + timedelta(minutes=3)  # when the order required it
    paid_bill = (await pay_bills_of_orders(both.db, [n]))[n]
    assert (paid_bill.status, paid_bill.refunded_amount) == (PayBillStatus.REFUNDED, bill.reserved.total_amount)


async def test_a_second_trade_given_back_leaves_the_bill_paid(both, venue):
    bill = Bill(await _hold(both, venue, slice(13, 14)))
    n = bill.reserved.order_number

    await both.payment((1, bill.created()), (2, bill.notified("T1")), (3, bill.notified("T2")))
    await both.payment((4, bill.succeeded("T2", f"{n}-R4")))

    paid_bill = (await pay_bills_of_orders(both.db, [n]))[n]
    assert (paid_bill.status, paid_bill.trade_number) == (PayBillStatus.PAID, "T1")


async def test_a_refund_ends_refunded_whichever_topic_is_projected_first(both, venue):
    """The provider's answers (payment topic) before the order required the refund (order topic),
    and a failed attempt applied after the order's OrderRefunded: refunded, required when the order
    said, all attempts counted."""
    bill = Bill(await _hold(both, venue, slice(14, 15)))
    n = bill.reserved.order_number
    await both.order((2, OrderCancelled(**_ids(bill.reserved))))
    await both.payment((1, bill.created()), (2, bill.notified("T1")), (3, bill.succeeded("T1", f"{n}-R3")))

    await both.order((3, _refund_required(bill.reserved, "T1")), (4, _order_refunded(bill.reserved, "T1", f"{n}-R3")))
    late = Bill(bill.reserved)
    late.id = bill.id
    await both.payment((4, late.failed("T1", f"{n}-R3", 1)))  # recorded before, arriving after

    [refund] = (await refunds_of_orders(both.db, [n]))[n]
    assert (refund.status, refund.refund_number, refund.attempts, refund.retry_at) == (
        RefundStatus.REFUNDED,
        f"{n}-R3",
        1,
        None,
    )
    assert refund.created_at == NOW + timedelta(minutes=3)
    assert (await load_order(both.db, n)).status is OrderStatus.REFUNDED  # type: ignore[union-attr]


async def test_bill_events_applied_again_or_appended_twice_change_nothing(both, venue):
    bill = Bill(await _hold(both, venue, slice(15, 16)))
    n = bill.reserved.order_number
    batch = both.payment_log.at(
        (1, bill.created()),
        (2, bill.notified("T1")),
        (3, bill.failed("T1", f"{n}-R3", 1)),
        (4, bill.succeeded("T1", f"{n}-R3")),
    )
    await both.payments.apply(batch)

    async def rows() -> tuple[PayBillRow, list[RefundBillRow]]:
        return (await pay_bills_of_orders(both.db, [n]))[n], (await refunds_of_orders(both.db, [n]))[n]

    before = await rows()

    await both.payments.apply(batch)
    await both.payments.apply(both.payment_log.again(batch))

    assert await rows() == before
    assert (before[0].refunded_amount, before[1][0].attempts) == (bill.reserved.total_amount, 2)
