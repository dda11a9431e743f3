"""An order's payment and refunds as its buyer sees them (``payment`` and ``refunds`` of the order
view, ``queries/orders.py``), from the same two places as the rest of the view.

- **Fresh** (Redis, while the order's view lives there): the bill's marker, written when the buyer
  starts paying (``infra/redis_keys.py:pay_bill_marker``), and the Order aggregate's snapshot
  (``order_snapshot``), which knows the payment that paid the order and each payment it gives
  back, with its outcome once the provider gave it back. Both sit in the program's slot and are
  read in one round trip. A failed attempt at the provider is not the aggregate's business (the
  pay bill's ``RefundFailed``), so while a refund is still under way its bill row in Postgres is
  read as well: ``failed`` and the attempts show from there, a few moments after the attempt
  (once projected).
- **Stored** (Postgres): the pay bill and refund bill rows the projectors keep
  (``projections/payment_projector.py``, ``projections/order_projector.py``).

The bill's status: ``created`` until a trade paid it, ``paid``, ``refunded`` once every trade
that paid it was given back (a trade after the order ended, or a second one, is given back; the
bill stays paid while the order's own payment stands).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from aggregates.order import Order
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import order_snapshot, pay_bill_marker
from queries.shapes import PublicShape
from queries.views.orders import PayBillRow, PayBillStatus, RefundBillRow, RefundStatus, refunds_of_orders


class PaymentOut(PublicShape):
    pay_bill_id: str
    channel: str
    amount: str
    """Yuan, a decimal string with two places: the order's total when the bill was opened."""
    status: str
    """created (opened, not paid yet), paid, or refunded (every trade that paid it given back)"""
    payment_id: str | None = None
    """The provider's number of the trade that paid it (the first, if the buyer paid twice)."""
    paid_at: datetime | None = None
    """When the provider says that trade was paid (null in the fresh view of a payment that came
    after the order ended: shown once the order's view is read from Postgres)."""


class RefundOut(PublicShape):
    """One payment given back."""

    amount: str
    status: str
    """requested (not given back yet), refunded, or failed (the last attempt at the provider failed;
    it is tried again until it succeeds)"""
    refund_number: str | None = None
    """Our number of the refund at the provider, once it is known."""
    requested_at: datetime
    refunded_at: datetime | None = None
    attempts: int | None = None
    """Attempts made at the provider so far; null where the view does not know them."""


class FreshPayments:
    """The bill's marker and the order's snapshot, read from the program's slot in one round trip."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def read(self, program_id: int, order_number: int) -> tuple[dict[str, Any] | None, Order | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(pay_bill_marker(program_id, order_number))
            pipe.hget(order_snapshot(program_id, order_number), "state")
            marker, state = cast(list[bytes | None], await pipe.execute())
        bill = cast(dict[str, Any], orjson.loads(marker)) if marker is not None else None
        return bill, Order.from_snapshot(state) if state is not None else None


async def fresh_payment(
    db: ShardedDatabase, order_number: int, marker: dict[str, Any] | None, order: Order | None
) -> tuple[PaymentOut | None, list[RefundOut]]:
    """The payment and refunds from the bill's marker and the order's snapshot (None: the order
    has no bill, or the lifecycle has not read its hold yet); refunds still under way completed
    from their rows."""
    refunds = _fresh_refunds(order)
    if any(r.status == RefundStatus.REQUESTED for _, r in refunds):
        refunds = _with_attempts(refunds, (await refunds_of_orders(db, [order_number])).get(order_number, []))
    return (_fresh_bill(marker, order) if marker is not None else None), [r for _, r in refunds]


def _fresh_bill(marker: dict[str, Any], order: Order | None) -> PaymentOut:
    paying = order.payment if order is not None else None
    given_back = order.refunds if order is not None else {}
    first = [paying.payment_id] if paying is not None else []
    trades = first + [t for t in given_back if t not in first]
    if not trades:
        status = PayBillStatus.CREATED
    elif all(t in given_back and given_back[t].refunded_at is not None for t in trades):
        status = PayBillStatus.REFUNDED
    else:
        status = PayBillStatus.PAID
    return PaymentOut(
        pay_bill_id=str(marker["payBillId"]),
        channel=str(marker["channel"]),
        amount=f"{Decimal(marker['amount']):.2f}",
        status=status.value,
        payment_id=trades[0] if trades else None,
        paid_at=paying.paid_at if paying is not None else None,
    )


def _fresh_refunds(order: Order | None) -> list[tuple[str, RefundOut]]:
    """Each payment the order gives back (by its trade), in the order they were required."""
    if order is None:
        return []
    return [
        (
            trade,
            RefundOut(
                amount=f"{refund.amount:.2f}",
                status=(RefundStatus.REFUNDED if refund.refunded_at is not None else RefundStatus.REQUESTED).value,
                refund_number=refund.refund_number,
                requested_at=refund.at,
                refunded_at=refund.refunded_at,
            ),
        )
        for trade, refund in sorted(order.refunds.items(), key=lambda item: item[1].version)
    ]


def _with_attempts(refunds: list[tuple[str, RefundOut]], rows: list[RefundBillRow]) -> list[tuple[str, RefundOut]]:
    """The fresh refunds still requested, with what their rows recorded of the attempts: failed,
    how many, under which number (the aggregate's word that one is refunded stands)."""
    by_trade = {r.trade_no: r for r in rows}
    completed = []
    for trade, refund in refunds:
        found = by_trade.get(trade)
        if refund.status == RefundStatus.REQUESTED and found is not None:
            refund = refund.model_copy(
                update={
                    "status": found.status.value,
                    "refund_number": found.refund_number,
                    "refunded_at": found.refunded_at,
                    "attempts": found.attempts,
                }
            )
        completed.append((trade, refund))
    return completed


def stored_payment(bill: PayBillRow | None) -> PaymentOut | None:
    if bill is None:
        return None
    return PaymentOut(
        pay_bill_id=str(bill.id),
        channel=bill.channel,
        amount=f"{bill.amount:.2f}",
        status=bill.status.value,
        payment_id=bill.trade_number,
        paid_at=bill.paid_at,
    )


def stored_refunds(rows: list[RefundBillRow]) -> list[RefundOut]:
    return [
        RefundOut(
            amount=f"{r.amount:.2f}",
            status=r.status.value,
            refund_number=r.refund_number,
            requested_at=r.created_at,
            refunded_at=r.refunded_at,
            attempts=r.attempts,
        )
        for r in rows
    ]
