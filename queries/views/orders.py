"""Orders, their tickets and their bills: every read names an order number or its buyer and
touches one table (the bills of a page of orders: each bill table they fall in, one with the
default layout).

An order number carries its buyer's gene, so a user's orders and any one of them live in the same
table; their pay and refund bills are routed by the same number (``infra/postgres/routing.py``). The
program's title, venue and show time are not here: the caller takes them from the catalogue by
``program_id`` and ``show_time_id`` (migration 0013_order_projection says why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from infra.postgres.routing import Shard
from infra.postgres.sharded import ShardedDatabase, row, rows


class OrderStatus(StrEnum):
    """An order row's ``status`` (the migration's CHECK is its twin)."""

    PENDING = "pending"
    UNPAID = "unpaid"
    REJECTED = "rejected"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


class PayBillStatus(StrEnum):
    """A pay bill's ``status`` (migration 0010's CHECK is its twin)."""

    CREATED = "created"
    PAID = "paid"
    CLOSED = "closed"
    REFUNDED = "refunded"
    """Every trade that paid it was given back."""


class RefundStatus(StrEnum):
    """A refund bill's ``status`` (migration 0010's CHECK is its twin)."""

    REQUESTED = "requested"
    """Required by the order; no attempt at the provider has answered yet."""
    REFUNDED = "refunded"
    FAILED = "failed"
    """The last attempt failed; it is tried again at ``retry_at``."""


class RefundReason(StrEnum):
    """Why a payment goes back (a refund bill's ``reason``, migration 0015_bill_projection)."""

    ORDER_REFUNDED = "order_refunded"
    """The paid order's refund was asked for: its seats went back on sale."""
    PAYMENT_NOT_NEEDED = "payment_not_needed"
    """The payment came after the order ended, or after another payment had paid it."""


@dataclass(frozen=True)
class OrderRow:
    order_number: int
    user_id: int
    program_id: int
    show_time_id: int
    ticket_count: int
    total_amount: Decimal
    status: OrderStatus
    reject_reason: str | None
    pay_deadline: datetime | None
    paid_at: datetime | None
    closed_at: datetime | None
    aggregate_version: int
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", OrderStatus(self.status))


@dataclass(frozen=True)
class OrderTicketRow:
    order_number: int
    ticket_index: int
    user_id: int
    ticket_buyer_id: int | None
    ticket_category_id: int
    seat_id: int | None
    """None for a general-admission ticket, as are its row and column."""
    row_number: int | None
    column_number: int | None
    price: Decimal
    aggregate_version: int
    created_at: datetime


_ORDER_COLUMNS = (
    "order_number, user_id, program_id, show_time_id, ticket_count, total_amount, status, reject_reason,"
    " pay_deadline, paid_at, closed_at, aggregate_version, created_at, updated_at"
)
_TICKET_COLUMNS = (
    "order_number, ticket_index, user_id, ticket_buyer_id, ticket_category_id, seat_id, row_number,"
    " column_number, price, aggregate_version, created_at"
)


@dataclass(frozen=True)
class PayBillRow:
    id: int
    order_number: int
    channel: str
    trade_number: str | None
    """The first trade that paid the bill."""
    amount: Decimal
    status: PayBillStatus
    paid_at: datetime | None
    paid_amount: Decimal
    refunded_amount: Decimal
    refunded_at: datetime | None
    created_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PayBillStatus(self.status))


@dataclass(frozen=True)
class RefundBillRow:
    order_number: int
    trade_no: str
    refund_number: str | None
    pay_bill_id: int | None
    amount: Decimal
    reason: str | None
    status: RefundStatus
    attempts: int
    last_error: str | None
    retry_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RefundStatus(self.status))


_PAY_BILL_COLUMNS = (
    "id, order_number, channel, trade_number, amount, status, paid_at, paid_amount, refunded_amount, refunded_at,"
    " created_at"
)
_REFUND_BILL_COLUMNS = (
    "order_number, trade_no, refund_number, pay_bill_id, amount, reason, status, attempts, last_error, retry_at,"
    " refunded_at, created_at"
)


async def orders_of_user(
    db: ShardedDatabase, user_id: int, *, status: str | None, page: int, size: int
) -> tuple[list[OrderRow], int]:
    """One page of the user's orders, newest first, with the count of all that match (for paging).

    ``page`` counts from 1; ``status`` None means every status. The caller bounds page and size.
    """
    shard = db.layout.orders_of_user(user_id)
    matching = "user_id = $1 AND ($2::text IS NULL OR status = $2)"
    total: int = await db.fetchval(shard, f"SELECT count(*) FROM {{table}} WHERE {matching}", user_id, status)
    sql = (
        f"SELECT {_ORDER_COLUMNS} FROM {{table}} WHERE {matching}"
        " ORDER BY created_at DESC, order_number DESC LIMIT $3 OFFSET $4"
    )
    found = await db.fetch(shard, sql, user_id, status, size, (page - 1) * size)
    return rows(OrderRow, found), total


async def load_order(db: ShardedDatabase, order_number: int) -> OrderRow | None:
    shard = db.layout.order(order_number)
    sql = f"SELECT {_ORDER_COLUMNS} FROM {{table}} WHERE order_number = $1"
    return row(OrderRow, await db.fetchrow(shard, sql, order_number))


async def tickets_of_order(db: ShardedDatabase, order_number: int) -> list[OrderTicketRow]:
    """The order's tickets in the order the allocator held them."""
    shard = db.layout.order_tickets(order_number)
    sql = f"SELECT {_TICKET_COLUMNS} FROM {{table}} WHERE order_number = $1 ORDER BY ticket_index"
    return rows(OrderTicketRow, await db.fetch(shard, sql, order_number))


async def pay_bills_of_orders(db: ShardedDatabase, order_numbers: Iterable[int]) -> dict[int, PayBillRow]:
    """The pay bill of each order that has one (one query per bill table the orders fall in)."""
    found: dict[int, PayBillRow] = {}
    for shard, numbers in _by_table(order_numbers, db.layout.pay_bill).items():
        sql = f"SELECT {_PAY_BILL_COLUMNS} FROM {{table}} WHERE order_number = ANY($1::bigint[])"
        found |= {b.order_number: b for b in rows(PayBillRow, await db.fetch(shard, sql, numbers))}
    return found


async def refunds_of_orders(db: ShardedDatabase, order_numbers: Iterable[int]) -> dict[int, list[RefundBillRow]]:
    """Each order's refunds, oldest first (an order without any is absent)."""
    found: dict[int, list[RefundBillRow]] = {}
    for shard, numbers in _by_table(order_numbers, db.layout.refund_bill).items():
        sql = (
            f"SELECT {_REFUND_BILL_COLUMNS} FROM {{table}} WHERE order_number = ANY($1::bigint[])"
            " ORDER BY created_at, trade_no"
        )
        for refund in rows(RefundBillRow, await db.fetch(shard, sql, numbers)):
            found.setdefault(refund.order_number, []).append(refund)
    return found


async def payments_of_orders(db: ShardedDatabase, order_numbers: Iterable[int]) -> dict[int, str | None]:
    """The payment that paid each order projected (None: not paid, or paid before payments were
    named); an order not projected is absent."""
    found: dict[int, str | None] = {}
    for shard, numbers in _by_table(order_numbers, db.layout.order).items():
        sql = "SELECT order_number, payment_id FROM {table} WHERE order_number = ANY($1::bigint[])"
        found |= {r["order_number"]: r["payment_id"] for r in await db.fetch(shard, sql, numbers)}
    return found


def _by_table(order_numbers: Iterable[int], route: Callable[[int], Shard]) -> dict[Shard, list[int]]:
    by_table: dict[Shard, list[int]] = {}
    for n in order_numbers:
        by_table.setdefault(route(n), []).append(n)
    return by_table
