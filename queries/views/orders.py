"""Orders and their tickets: every read names an order number or its buyer and touches one table.

An order number carries its buyer's gene, so a user's orders and any one of them live in the same
table (``infra/postgres/routing.py``). The program's title, venue and show time are not here: the
caller takes them from the catalogue by ``program_id`` and ``show_time_id``
(migration 0013_order_projection says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

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
