"""Payment and refund bills of an order: routed by its order number, one table each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from infra.postgres.views.sharded import ShardedDatabase, row, rows


@dataclass(frozen=True)
class PayBillRow:
    id: int
    order_number: int
    channel: str
    trade_number: str | None
    amount: Decimal
    status: str
    paid_at: datetime | None
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RefundBillRow:
    id: int
    order_number: int
    pay_bill_id: int
    amount: Decimal
    reason: str
    status: str
    refunded_at: datetime | None
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


async def pay_bill_of(db: ShardedDatabase, order_number: int) -> PayBillRow | None:
    shard = db.layout.pay_bill(order_number)
    return row(PayBillRow, await db.fetchrow(shard, "SELECT * FROM {table} WHERE order_number = $1", order_number))


async def refund_bills_of(db: ShardedDatabase, order_number: int) -> list[RefundBillRow]:
    shard = db.layout.refund_bill(order_number)
    sql = "SELECT * FROM {table} WHERE order_number = $1 ORDER BY created_at, id"
    return rows(RefundBillRow, await db.fetch(shard, sql, order_number))
