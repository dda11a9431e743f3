"""The order view's payment and refunds, against real Redis and Postgres: fresh from the bill's
marker and the Order aggregate's snapshot (saved by lua/order_release.lua as the lifecycle saves
it), stored from the bill rows the projectors wrote; and ``damai verify orders`` on a refunded
order, which holds nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest_asyncio

from aggregates.order import Order
from aggregates.pay_bill import PayBill
from commands.order import PlacedOrder, Remembered
from events.envelope import EventEnvelope
from events.payment import PaymentSource
from events.program import RefundPolicy
from infra.order_store import RedisDecisions, RedisOrderAdmission, RedisOrderIndex, RedisPayBills
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts
from infra.redis_keys import SEAT_ROW_STRIDE, pay_bill_marker, program_keys_pattern, user_order
from projections.batch import Delivered, Positioned
from projections.order_projector import OrderProjector
from projections.payment_projector import PaymentProjector
from projections.seat_allocation import Loaded, reserve, save_order
from projections.verify import verify_program_orders
from queries.order_payments import FreshPayments
from queries.orders import OrderOut, OrderReads
from tests.integration.test_order_reserve import INNER, NOW_MS, SHOW, USER, lay_out, new_program_id, request

TTL_S = 600
TRADE = "2026120122001400000000000001"
PAID_AT = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)


@dataclass
class Bought:
    """One order of a program laid out in Redis: held, its bill opened, paid, and its refund asked
    for, each saved as the lifecycle saves it; the events of each step, to project."""

    reads: OrderReads
    settings: Any
    redis: Any
    db: ShardedDatabase
    order: Order
    bill: PayBill
    order_events: list[EventEnvelope]
    bill_events: list[EventEnvelope]

    @property
    def number(self) -> int:
        return self.order.order_number

    async def view(self) -> OrderOut:
        return await self.reads.order(USER, self.number)

    async def project(self, isolated: Any) -> None:
        group = isolated.worker.projector_group
        orders = OrderProjector(f"{group}.order", self.db.pools, self.db.layout)
        await orders.apply([Positioned(Delivered("order", 0, i), e) for i, e in enumerate(self.order_events)])
        bills = PaymentProjector(f"{group}.payment", self.db.pools, self.db.layout)
        await bills.apply([Positioned(Delivered("payment", 0, i), e) for i, e in enumerate(self.bill_events)])

    async def forget_in_redis(self) -> None:
        await self.redis.delete(user_order(self.settings.orders.key_prefix, USER, self.number))


def _wrapped(aggregate: Order | PayBill) -> list[EventEnvelope]:
    return [
        EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at) for d in aggregate.outbox()
    ]


@pytest_asyncio.fixture
async def bought(isolated, redis, db) -> AsyncIterator[Bought]:
    sharded, _ = db
    program_id, scripts = new_program_id(), LuaScripts(redis)
    async with redis.pipeline(transaction=False) as pipe:
        lay_out(pipe, program_id, SHOW, INNER, {1: range(1, 6)})
        await pipe.execute()
    number = sharded.layout.gene_of_user(USER) + (uuid.uuid4().int % 1_000_000 << 10)
    [decision] = await reserve(scripts, program_id, [request(program_id, number)], NOW_MS, SEAT_ROW_STRIDE, TTL_S)
    assert decision.total is not None and decision.pay_deadline is not None and decision.hold_sequence is not None
    order = Order.hold(
        number,
        USER,
        program_id,
        SHOW,
        decision.tickets,
        decision.total,
        decision.pay_deadline,
        datetime.now(UTC),
        decision.hold_sequence,
    )
    order_events = _wrapped(order)
    await save_order(scripts, order, None, SEAT_ROW_STRIDE, TTL_S)
    placed = PlacedOrder(program_id, SHOW, datetime.now(UTC))
    await RedisOrderAdmission(redis, scripts, isolated).admit(USER, placed, Remembered(number, "f", program_id), None)
    bill = PayBill.open(number, number + 1, USER, program_id, "alipay", decision.total)
    await RedisPayBills(redis, isolated).mark(bill, datetime.now(UTC))
    bill_events = _wrapped(bill)
    reads = OrderReads(RedisDecisions(redis), RedisOrderIndex(redis, isolated), sharded, FreshPayments(redis))
    yield Bought(reads, isolated, redis, sharded, order, bill, order_events, bill_events)
    keys = [k async for k in redis.scan_iter(match=program_keys_pattern(program_id))]
    if keys:
        await redis.delete(*keys)


async def _step(bought: Bought, change: Any) -> None:
    """One decision of the order, saved as the lifecycle saves it."""
    loaded = Loaded.of(bought.order)
    change(bought.order)
    bought.order_events += _wrapped(bought.order)
    saved = await save_order(LuaScripts(bought.redis), bought.order, loaded, SEAT_ROW_STRIDE, TTL_S)
    assert saved.changed


def _pays(order: Order) -> None:
    order.confirm_payment(TRADE, order.total_amount or Decimal(0), PAID_AT)


def _refund_asked(order: Order) -> None:
    order.request_refund(RefundPolicy(refundable=False, deadline_hours_before_show=0), PAID_AT, PAID_AT, True)


def _shape(view: OrderOut) -> dict[str, Any]:
    return view.model_dump(by_alias=True, mode="json", include={"status", "payment", "refunds"})


async def test_an_order_without_a_bill_shows_no_payment_and_no_refunds(bought):
    await bought.redis.delete(pay_bill_marker(bought.order.program_id, bought.number))
    bought.bill_events = []

    fresh = await bought.view()
    await bought.project(bought.settings)
    await bought.forget_in_redis()
    stored = await bought.view()

    assert _shape(fresh) == _shape(stored) == {"status": "unpaid", "payment": None, "refunds": []}


async def test_an_opened_bill_shows_created_at_once(bought):
    view = await bought.view()

    assert _shape(view) == {
        "status": "unpaid",
        "payment": {
            "payBillId": str(bought.bill.pay_bill_id),
            "channel": "alipay",
            "amount": "160.00",
            "status": "created",
            "paymentId": None,
            "paidAt": None,
        },
        "refunds": [],
    }


async def test_a_paid_orders_refund_shows_the_same_from_redis_and_from_postgres(bought):
    await _step(bought, _pays)
    paid = await bought.view()
    await _step(bought, _refund_asked)
    bought.bill.record_payment(TRADE, Decimal("160.00"), PAID_AT, PaymentSource.NOTIFY)
    bought.bill_events += _wrapped(bought.bill)

    fresh = await bought.view()
    await bought.project(bought.settings)
    await bought.forget_in_redis()
    stored = await bought.view()

    assert (paid.status, paid.payment and paid.payment.status, paid.payment and paid.payment.payment_id) == (
        "paid",
        "paid",
        TRADE,
    )
    refund = {"amount": "160.00", "status": "requested", "refundNumber": None, "refundedAt": None}
    assert _shape(fresh)["status"] == "refunded"
    assert {k: v for k, v in _shape(fresh)["refunds"][0].items() if k in refund} == refund
    assert _shape(fresh)["refunds"][0]["attempts"] is None
    assert _shape(stored)["refunds"][0]["attempts"] == 0
    assert (
        _shape(stored)["payment"]
        == _shape(fresh)["payment"]
        == {
            "payBillId": str(bought.bill.pay_bill_id),
            "channel": "alipay",
            "amount": "160.00",
            "status": "paid",
            "paymentId": TRADE,
            "paidAt": "2026-12-01T12:05:00Z",
        }
    )
    assert stored.status == "refunded"
    assert stored.refunds[0].requested_at == fresh.refunds[0].requested_at


async def test_a_failed_attempt_shows_while_fresh_once_projected_and_the_refund_once_done(bought):
    await _step(bought, _pays)
    await _step(bought, _refund_asked)
    bill, n = bought.bill, bought.number
    bill.record_payment(TRADE, Decimal("160.00"), PAID_AT, PaymentSource.NOTIFY)
    bill.record_refund_failure(TRADE, f"{n}-R3", Decimal("160.00"), "40004 ACQ.SYSTEM_ERROR", PAID_AT)
    bought.bill_events += _wrapped(bill)
    await bought.project(bought.settings)

    failing = await bought.view()
    refunded_at = PAID_AT + timedelta(minutes=1)
    await _step(bought, lambda o: o.confirm_refund(TRADE, f"{n}-R3", Decimal("160.00"), refunded_at))
    done = await bought.view()

    assert [(r.status, r.attempts, r.refund_number) for r in failing.refunds] == [("failed", 1, f"{n}-R3")]
    assert [(r.status, r.refund_number, r.refunded_at) for r in done.refunds] == [("refunded", f"{n}-R3", refunded_at)]
    assert done.payment is not None and done.payment.status == "refunded"


async def test_a_refunded_order_holds_nothing_in_redis_or_postgres_by_verify(bought):
    await _step(bought, _pays)
    await _step(bought, _refund_asked)
    await bought.project(bought.settings)

    report = await verify_program_orders(bought.db, bought.redis, bought.order.program_id)

    assert (report.differences, report.live_orders, report.awaiting_projection) == ((), 0, 0)
