"""A program and what is sold for it: every read names the program and touches one slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregates.program import ProgramStatus
from infra.postgres.sharded import ShardedDatabase, row, rows


@dataclass(frozen=True)
class ProgramRow:
    id: int
    title: str
    actor: str | None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int
    detail: str
    notices: Any
    per_order_limit: int
    per_account_limit: int
    seat_selectable: bool
    real_name_required: bool
    refund_policy: Any
    high_heat: bool
    issue_time: datetime | None
    payment_minutes: int
    status: ProgramStatus
    aggregate_version: int
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", ProgramStatus(self.status))


@dataclass(frozen=True)
class ShowTimeRow:
    id: int
    program_id: int
    starts_at: datetime
    status: str
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketCategoryRow:
    id: int
    program_id: int
    show_time_id: int
    name: str
    price: Decimal
    total: int
    remaining: int
    aggregate_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SeatRow:
    id: int
    program_id: int
    show_time_id: int
    ticket_category_id: int
    row_number: int
    column_number: int
    price: Decimal
    status: str
    order_number: int | None
    aggregate_version: int
    created_at: datetime
    updated_at: datetime
    hold_sequence: int
    """The hold of its program that last took the seat (0: never held; projections/order_projector.py)."""


async def get_program(db: ShardedDatabase, program_id: int) -> ProgramRow | None:
    shard = db.layout.program_family("program", program_id)
    return row(ProgramRow, await db.fetchrow(shard, "SELECT * FROM {table} WHERE id = $1", program_id))


async def show_times_of(db: ShardedDatabase, program_id: int) -> list[ShowTimeRow]:
    shard = db.layout.program_family("show_time", program_id)
    sql = "SELECT * FROM {table} WHERE program_id = $1 ORDER BY starts_at, id"
    return rows(ShowTimeRow, await db.fetch(shard, sql, program_id))


async def ticket_categories_of(db: ShardedDatabase, program_id: int) -> list[TicketCategoryRow]:
    shard = db.layout.program_family("ticket_category", program_id)
    sql = "SELECT * FROM {table} WHERE program_id = $1 ORDER BY show_time_id, price, id"
    return rows(TicketCategoryRow, await db.fetch(shard, sql, program_id))


async def seats_of(db: ShardedDatabase, program_id: int, ticket_category_id: int | None = None) -> list[SeatRow]:
    shard = db.layout.program_family("seat", program_id)
    if ticket_category_id is None:
        sql = "SELECT * FROM {table} WHERE program_id = $1 ORDER BY row_number, column_number"
        return rows(SeatRow, await db.fetch(shard, sql, program_id))
    sql = "SELECT * FROM {table} WHERE program_id = $1 AND ticket_category_id = $2 ORDER BY row_number, column_number"
    return rows(SeatRow, await db.fetch(shard, sql, program_id, ticket_category_id))


async def full_route_program_ids(db: ShardedDatabase) -> AsyncIterator[list[int]]:
    """Full route, on purpose: the ids of every program row, one physical table at a time.

    For rebuilding the Bloom filter of existing programs; never on a request path.
    """
    for shard in db.layout.physical_tables("program"):
        yield [r["id"] for r in await db.fetch(shard, "SELECT id FROM {table}")]


async def full_route_program_ids_by_title(db: ShardedDatabase, titles: list[str]) -> dict[str, int]:
    """FULL ROUTE: programs with one of these exact titles, in every program table. For the demo
    seed's idempotency (an admin tool), never a request path."""
    found: dict[str, int] = {}
    for shard in db.layout.physical_tables("program"):
        for r in await db.fetch(shard, "SELECT id, title FROM {table} WHERE title = ANY($1::text[])", titles):
            found[r["title"]] = r["id"]
    return found
