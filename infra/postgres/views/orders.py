"""Orders and their tickets: by order number, or a user's list — both read one table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from infra.postgres.views.sharded import ShardedDatabase, row, rows


@dataclass(frozen=True)
class OrderRow:
    order_number: int
    user_id: int
    program_id: int
    show_time_id: int
    program_title: str
    venue: str
    show_starts_at: datetime
    ticket_count: int
    total_amount: Decimal
    status: str
    reject_reason: str | None
    pay_deadline: datetime | None
    paid_at: datetime | None
    closed_at: datetime | None
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OrderTicketRow:
    id: int
    order_number: int
    user_id: int
    ticket_buyer_id: int | None
    ticket_category_id: int
    seat_id: int | None
    row_number: int | None
    column_number: int | None
    price: Decimal
    aggregate_version: int
    created_at: datetime


async def get_order(db: ShardedDatabase, order_number: int) -> OrderRow | None:
    return row(
        OrderRow,
        await db.fetchrow(db.layout.order(order_number), "SELECT * FROM {table} WHERE order_number = $1", order_number),
    )


async def orders_of_user(
    db: ShardedDatabase, user_id: int, *, limit: int, before: datetime | None = None
) -> list[OrderRow]:
    """A user's orders, newest first, a page at a time (keyset paging on created_at)."""
    shard = db.layout.orders_of_user(user_id)
    if before is None:
        sql = "SELECT * FROM {table} WHERE user_id = $1 ORDER BY created_at DESC, order_number DESC LIMIT $2"
        return rows(OrderRow, await db.fetch(shard, sql, user_id, limit))
    sql = (
        "SELECT * FROM {table} WHERE user_id = $1 AND created_at < $3"
        " ORDER BY created_at DESC, order_number DESC LIMIT $2"
    )
    return rows(OrderRow, await db.fetch(shard, sql, user_id, limit, before))


async def tickets_of_order(db: ShardedDatabase, order_number: int) -> list[OrderTicketRow]:
    return rows(
        OrderTicketRow,
        await db.fetch(
            db.layout.order_tickets(order_number),
            "SELECT * FROM {table} WHERE order_number = $1 ORDER BY id",
            order_number,
        ),
    )


async def full_route_orders_of_program(db: ShardedDatabase, program_id: int) -> list[OrderRow]:
    """FULL ROUTE: every order table of every shard. For audits and `verify`, never a request path."""
    found: list[OrderRow] = []
    for shard in db.layout.physical_tables("order"):
        found += rows(OrderRow, await db.fetch(shard, "SELECT * FROM {table} WHERE program_id = $1", program_id))
    return sorted(found, key=lambda o: o.order_number)
