"""Projects the pay bills' history (the ``payment`` topic) into the bill tables of the order's
shard group, routed by order number: the bill itself, and each refund's attempts at the provider.

Each event's writes are one function, ``when_<event>``. A bill's events are one aggregate's, in
one partition, in order; a row keeps the bill's ``aggregate_version`` it last took, and an event
changes it only when newer, so a redelivery, a rewind or the same event appended twice changes
nothing. The first trade that paid a bill stays its trade: a second one (the buyer paid twice;
the order gives that money back) adds to what the bill took, never replaces it; the bill reads
``refunded`` once everything it took is back.

A refund's row is shared with the order projector, which makes it ``requested`` when the order
requires the refund (``RefundRequired`` on the ``order`` topic); the two topics are projected in
any interleaving, so both write it as an upsert keyed by the order and the trade given back, and
``refunded`` is never undone by an attempt recorded before it that arrives after.
"""

from __future__ import annotations

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.payment import PayBillCreated, PaymentEvent, PaymentNotified, RefundFailed, RefundSucceeded
from events.serialization import payload_of
from infra.postgres.pools import ShardPools
from infra.postgres.routing import ShardLayout
from projections.projector import Batch, OffsetsInEveryShard, RowWrite, apply_row_writes
from queries.views.orders import PayBillStatus, RefundStatus

OPEN_BILL = f"""
INSERT INTO {{table}} (id, order_number, channel, amount, status, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, '{PayBillStatus.CREATED}', $5, $6)
ON CONFLICT DO NOTHING
"""
PAY_BILL = f"""
UPDATE {{table}} SET status = '{PayBillStatus.PAID}', trade_number = COALESCE(trade_number, $2),
    paid_at = COALESCE(paid_at, $3), paid_amount = paid_amount + $4, aggregate_version = $5, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $5
"""
REFUND_BILL = f"""
UPDATE {{table}} SET refunded_amount = refunded_amount + $2, refunded_at = $3, aggregate_version = $4,
    status = CASE WHEN refunded_amount + $2 >= paid_amount THEN '{PayBillStatus.REFUNDED}' ELSE status END,
    updated_at = now()
WHERE order_number = $1 AND aggregate_version < $4
"""
REFUND_SUCCEEDED = f"""
INSERT INTO {{table}} (order_number, trade_no, refund_number, pay_bill_id, amount, status, attempts, refunded_at,
    aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, '{RefundStatus.REFUNDED}', 1, $6, $7, $8)
ON CONFLICT (order_number, trade_no) DO UPDATE SET
    status = '{RefundStatus.REFUNDED}',
    refund_number = EXCLUDED.refund_number,
    pay_bill_id = EXCLUDED.pay_bill_id,
    attempts = {{table}}.attempts + 1,
    refunded_at = COALESCE({{table}}.refunded_at, EXCLUDED.refunded_at),
    retry_at = NULL,
    aggregate_version = EXCLUDED.aggregate_version,
    updated_at = now()
WHERE {{table}}.aggregate_version < EXCLUDED.aggregate_version
"""
# A failed attempt recorded after the refund was seen refunded (the order's OrderRefunded is
# projected apart, and may come first) leaves it refunded.
REFUND_FAILED = f"""
INSERT INTO {{table}} (order_number, trade_no, refund_number, pay_bill_id, amount, status, attempts, last_error,
    retry_at, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, '{RefundStatus.FAILED}', $6, $7, $8, $9, $10)
ON CONFLICT (order_number, trade_no) DO UPDATE SET
    status = CASE WHEN {{table}}.status = '{RefundStatus.REFUNDED}' THEN {{table}}.status
        ELSE '{RefundStatus.FAILED}' END,
    refund_number = EXCLUDED.refund_number,
    pay_bill_id = EXCLUDED.pay_bill_id,
    attempts = GREATEST({{table}}.attempts, EXCLUDED.attempts),
    last_error = EXCLUDED.last_error,
    retry_at = CASE WHEN {{table}}.status = '{RefundStatus.REFUNDED}' THEN NULL ELSE EXCLUDED.retry_at END,
    aggregate_version = EXCLUDED.aggregate_version,
    updated_at = now()
WHERE {{table}}.aggregate_version < EXCLUDED.aggregate_version
"""


def when_pay_bill_created(layout: ShardLayout, env: EventEnvelope, e: PayBillCreated) -> list[RowWrite]:
    """The bill of the order's whole amount, open."""
    n = e.order_number
    bill = (e.pay_bill_id, n, e.channel, e.amount, env.aggregate_version, env.occurred_at)
    return [RowWrite(layout.pay_bill(n), OPEN_BILL, bill)]


def when_payment_notified(layout: ShardLayout, env: EventEnvelope, e: PaymentNotified) -> list[RowWrite]:
    """A trade paid the bill: the bill paid (by its first trade, whatever came after)."""
    n = e.order_number
    return [RowWrite(layout.pay_bill(n), PAY_BILL, (n, e.trade_no, e.paid_at, e.amount, env.aggregate_version))]


def when_refund_succeeded(layout: ShardLayout, env: EventEnvelope, e: RefundSucceeded) -> list[RowWrite]:
    """The provider gave a trade's money back: the refund refunded, and the bill with it once
    everything it took is back."""
    n, v = e.order_number, env.aggregate_version
    refund = (n, e.trade_no, e.refund_number, e.pay_bill_id, e.amount, e.refunded_at, v, env.occurred_at)
    return [
        RowWrite(layout.refund_bill(n), REFUND_SUCCEEDED, refund),
        RowWrite(layout.pay_bill(n), REFUND_BILL, (n, e.amount, e.refunded_at, v)),
    ]


def when_refund_failed(layout: ShardLayout, env: EventEnvelope, e: RefundFailed) -> list[RowWrite]:
    """An attempt the provider did not carry out: the refund failed for now, tried again at ``retry_at``."""
    n = e.order_number
    attempt = (e.attempt, e.error, e.retry_at, env.aggregate_version, env.occurred_at)
    refund = (n, e.trade_no, e.refund_number, e.pay_bill_id, e.amount, *attempt)
    return [RowWrite(layout.refund_bill(n), REFUND_FAILED, refund)]


def _writes(layout: ShardLayout, env: EventEnvelope, e: PaymentEvent) -> list[RowWrite]:
    """The row writes one event makes, in the order they apply."""
    match e:
        case PayBillCreated():
            return when_pay_bill_created(layout, env, e)
        case PaymentNotified():
            return when_payment_notified(layout, env, e)
        case RefundSucceeded():
            return when_refund_succeeded(layout, env, e)
        case RefundFailed():
            return when_refund_failed(layout, env, e)
    return []


class PaymentProjector(OffsetsInEveryShard):
    """Each database applies the batch's rows of its bill tables in one transaction, with its offsets."""

    def __init__(self, name: str, pools: ShardPools, layout: ShardLayout):
        self.name = name
        self._pools = pools
        self._layout = layout

    async def apply(self, batch: Batch) -> None:
        typed = {r.position: (r.item, e) for r in batch if (e := _payment_event(r.item)) is not None}
        await apply_row_writes(self.name, self._pools, batch, typed, lambda t: _writes(self._layout, *t))


def _payment_event(envelope: EventEnvelope) -> PaymentEvent | None:
    event: DomainEvent = payload_of(envelope)
    return event if isinstance(event, PaymentEvent) else None
