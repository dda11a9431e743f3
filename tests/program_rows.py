"""Program rows written straight into their shard tables, as the projector would leave them.

For read-side tests that need a program without running the write side.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from infra.postgres.sharded import ShardedDatabase

CREATED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
STARTS = datetime(2026, 12, 24, 19, 30, tzinfo=UTC)

# Ids unique across tests and runs, shaped like 63-bit entity ids.
_ids = itertools.count((int(time.time() * 1000) << 20) & ((1 << 62) - 1))


def next_id() -> int:
    return next(_ids)


@dataclass(frozen=True)
class CategorySpec:
    name: str
    price: Decimal
    total: int
    remaining: int


@dataclass(frozen=True)
class ShowTimeSpec:
    starts_at: datetime
    categories: list[CategorySpec] = field(default_factory=list)


@dataclass(frozen=True)
class InsertedProgram:
    id: int
    show_time_ids: list[int]
    ticket_category_ids: list[list[int]]


def two_show_times() -> list[ShowTimeSpec]:
    return [
        ShowTimeSpec(
            STARTS,
            [CategorySpec("看台", Decimal("380"), 500, 120), CategorySpec("内场", Decimal("1280.5"), 200, 0)],
        ),
        ShowTimeSpec(STARTS + timedelta(days=1), [CategorySpec("看台", Decimal("380"), 500, 500)]),
    ]


async def insert_program(
    db: ShardedDatabase,
    *,
    status: str = "on_sale",
    title: str = "五月天 回到那一天",
    show_times: list[ShowTimeSpec] | None = None,
) -> InsertedProgram:
    program_id = next_id()
    layout = db.layout
    program = layout.program_family("program", program_id)
    await db.pools[program.database].execute(
        f"INSERT INTO {program.table} (id, title, actor, venue, area_id, parent_category_id, category_id, detail,"
        " notices, per_order_limit, per_account_limit, seat_selectable, real_name_required, refund_policy,"
        " high_heat, issue_time, payment_minutes, status, aggregate_version, created_at)"
        " VALUES ($1, $2, '五月天', '国家体育场', 110000, 1, 101, '<p>巡演</p>', $3, 4, 6, true, true, $4,"
        " true, $5, 15, $6, 1, $5)",
        program_id,
        title,
        ["凭身份证入场", "禁止携带荧光棒"],
        {"refundable": True, "deadlineHoursBeforeShow": 48},
        CREATED,
        status,
    )
    show_time_ids, category_ids = [], []
    for spec in show_times if show_times is not None else two_show_times():
        show_time_id = next_id()
        show_time_ids.append(show_time_id)
        shard = layout.program_family("show_time", program_id)
        await db.pools[shard.database].execute(
            f"INSERT INTO {shard.table} (id, program_id, starts_at, aggregate_version, created_at)"
            " VALUES ($1, $2, $3, 1, $4)",
            show_time_id,
            program_id,
            spec.starts_at,
            CREATED,
        )
        ids = []
        for category in spec.categories:
            ids.append(next_id())
            shard = layout.program_family("ticket_category", program_id)
            await db.pools[shard.database].execute(
                f"INSERT INTO {shard.table} (id, program_id, show_time_id, name, price, total, remaining,"
                " aggregate_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)",
                ids[-1],
                program_id,
                show_time_id,
                category.name,
                category.price,
                category.total,
                category.remaining,
                CREATED,
            )
        category_ids.append(ids)
    return InsertedProgram(program_id, show_time_ids, category_ids)


async def rename_program(db: ShardedDatabase, program_id: int, title: str) -> None:
    shard = db.layout.program_family("program", program_id)
    await db.pools[shard.database].execute(
        f"UPDATE {shard.table} SET title = $2, aggregate_version = aggregate_version + 1 WHERE id = $1",
        program_id,
        title,
    )
