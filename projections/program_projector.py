"""Projects the program catalogue into its Postgres shards (program, show times, ticket categories, seats)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from aggregates.program import ProgramStatus
from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.program import (
    ProgramCreated,
    ProgramEvent,
    ProgramPublished,
    ProgramTakenOffSale,
    SeatsLaidOut,
    ShowTimeAdded,
    ShowTimeRescheduled,
    TicketCategoryAdded,
    TicketCategoryRepriced,
)
from events.serialization import payload_of
from infra.postgres.pools import ShardPools
from infra.postgres.routing import ShardLayout
from infra.postgres.sharded import ShardedDatabase
from infra.settings import Settings
from projections.batch import Delivered
from projections.offsets import take_unapplied
from projections.projector import Batch, OffsetsInEveryShard
from projections.search_index import SearchIndex
from queries.cache import add_program_to_bloom, invalidate_program

INSERT_PROGRAM = f"""
INSERT INTO {{table}} (id, title, actor, venue, area_id, parent_category_id, category_id, detail, notices,
    per_order_limit, per_account_limit, seat_selectable, real_name_required, refund_policy, high_heat,
    issue_time, payment_minutes, status, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, '{ProgramStatus.DRAFT}', $18, $19)
ON CONFLICT (id) DO NOTHING
"""
INSERT_SHOW_TIME = """
INSERT INTO {table} (id, program_id, starts_at, aggregate_version, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING
"""
INSERT_TICKET_CATEGORY = """
INSERT INTO {table} (id, program_id, show_time_id, name, price, total, remaining, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
"""
INSERT_SEAT = """
INSERT INTO {table} (id, program_id, show_time_id, ticket_category_id, row_number, column_number, price,
    aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING
"""
# Updates name the event's version and skip rows that already have it (or a newer one).
SET_STATUS = """
UPDATE {table} SET status = $2, aggregate_version = $3, updated_at = now()
WHERE id = $1 AND aggregate_version < $3
"""
RESCHEDULE_SHOW_TIME = """
UPDATE {table} SET starts_at = $2, aggregate_version = $3, updated_at = now()
WHERE id = $1 AND aggregate_version < $3
"""
REPRICE_TICKET_CATEGORY = """
UPDATE {table} SET price = $2, aggregate_version = $3, updated_at = now()
WHERE id = $1 AND aggregate_version < $3
"""
REPRICE_SEATS = """
UPDATE {table} SET price = $2, aggregate_version = $3, updated_at = now()
WHERE program_id = $4 AND ticket_category_id = $1 AND aggregate_version < $3
"""
# The program row carries the newest version applied to any part of the program: the floor
# under which admin commands never reserve versions again (ADR 0004).
ADVANCE_PROGRAM_VERSION = """
UPDATE {table} SET aggregate_version = $2, updated_at = now()
WHERE id = $1 AND aggregate_version < $2
"""

Rows = list[tuple[Any, ...]]
Typed = list[tuple[EventEnvelope, ProgramEvent]]
"""Events of a batch with their validated payloads."""


def _program_rows(env: EventEnvelope, e: ProgramCreated) -> Rows:
    return [
        (
            e.program_id,
            e.title,
            e.actor,
            e.venue,
            e.area_id,
            e.parent_category_id,
            e.category_id,
            e.detail,
            e.notices,
            e.per_order_limit,
            e.per_account_limit,
            e.seat_selectable,
            e.real_name_required,
            e.refund_policy.model_dump(mode="json", by_alias=True),
            e.high_heat,
            e.issue_time,
            e.payment_minutes,
            env.aggregate_version,
            env.occurred_at,
        )
    ]


def _show_time_rows(env: EventEnvelope, e: ShowTimeAdded) -> Rows:
    return [(e.show_time_id, e.program_id, e.starts_at, env.aggregate_version, env.occurred_at)]


def _ticket_category_rows(env: EventEnvelope, e: TicketCategoryAdded) -> Rows:
    return [
        (
            e.ticket_category_id,
            e.program_id,
            e.show_time_id,
            e.name,
            e.price,
            e.total,
            env.aggregate_version,
            env.occurred_at,
        )
    ]


def _seat_rows(env: EventEnvelope, e: SeatsLaidOut) -> Rows:
    return [
        (
            s.seat_id,
            e.program_id,
            e.show_time_id,
            e.ticket_category_id,
            s.row,
            s.column,
            s.price,
            env.aggregate_version,
            env.occurred_at,
        )
        for s in e.seats
    ]


# event type → (table family, statement, rows); applied in this order, before the updates.
INSERTS: list[tuple[type[ProgramEvent], str, str, Callable[[EventEnvelope, Any], Rows]]] = [
    (ProgramCreated, "program", INSERT_PROGRAM, _program_rows),
    (ShowTimeAdded, "show_time", INSERT_SHOW_TIME, _show_time_rows),
    (TicketCategoryAdded, "ticket_category", INSERT_TICKET_CATEGORY, _ticket_category_rows),
    (SeatsLaidOut, "seat", INSERT_SEAT, _seat_rows),
]

Update = tuple[str, str, tuple[Any, ...]]
"""(table family, statement, arguments)"""


def _updates(env: EventEnvelope, e: ProgramEvent) -> list[Update]:
    """The row updates one event makes, in the order they apply."""
    version = env.aggregate_version
    match e:
        case ProgramPublished():
            return [("program", SET_STATUS, (e.program_id, ProgramStatus.ON_SALE.value, version))]
        case ProgramTakenOffSale():
            return [("program", SET_STATUS, (e.program_id, ProgramStatus.OFF_SALE.value, version))]
        case ShowTimeRescheduled():
            return [("show_time", RESCHEDULE_SHOW_TIME, (e.show_time_id, e.starts_at, version))]
        case TicketCategoryRepriced():
            return [
                ("ticket_category", REPRICE_TICKET_CATEGORY, (e.ticket_category_id, e.price, version)),
                ("seat", REPRICE_SEATS, (e.ticket_category_id, e.price, version, e.program_id)),
            ]
    return []


class ProgramRows(OffsetsInEveryShard):
    """The catalogue's rows: each database applies the batch's events of the programs it holds,
    in one transaction with its offsets. The Postgres part of ``ProgramProjector``, alone what a
    Postgres rebuild replays (projections/rebuild_postgres.py)."""

    def __init__(self, name: str, pools: ShardPools, layout: ShardLayout):
        self.name = name
        self._pools = pools
        self._layout = layout

    async def apply(self, batch: Batch) -> None:
        await self.write(batch, typed_program_events(batch))

    async def write(self, batch: Batch, typed: dict[Delivered, tuple[EventEnvelope, ProgramEvent]]) -> None:
        """Apply ``batch`` whose program events, validated once, are ``typed``."""
        for database, pool in self._pools:
            async with pool.acquire() as conn, conn.transaction():
                fresh = [typed[r.position] for r in await take_unapplied(conn, self.name, batch) if r.position in typed]
                mine = [(env, e) for env, e in fresh if self._database_of(e.program_id) == database]
                await self._apply(conn, mine)

    def _database_of(self, program_id: int) -> str:
        return self._layout.program_family("program", program_id).database

    async def _apply(self, conn: asyncpg.Connection, events: Typed) -> None:
        for kind, family, statement, to_rows in INSERTS:
            by_table: dict[str, Rows] = defaultdict(list)
            for env, e in events:
                if isinstance(e, kind):
                    by_table[self._layout.program_family(family, e.program_id).table] += to_rows(env, e)
            for table, rows in by_table.items():
                await conn.executemany(statement.format(table=table), rows)
        for env, e in events:
            for family, statement, args in _updates(env, e):
                table = self._layout.program_family(family, e.program_id).table
                await conn.execute(statement.format(table=table), *args)
        versions_by_table: dict[str, Rows] = defaultdict(list)
        for program_id, version in _newest_versions(events).items():
            versions_by_table[self._layout.program_family("program", program_id).table].append((program_id, version))
        for table, rows in versions_by_table.items():
            await conn.executemany(ADVANCE_PROGRAM_VERSION.format(table=table), rows)


class ProgramProjector(ProgramRows):
    """The catalogue's rows (``ProgramRows``); then the detail caches learn of new programs (Bloom
    filter) and drop changed ones, and the search index takes the changed programs."""

    def __init__(
        self,
        name: str,
        pools: ShardPools,
        layout: ShardLayout,
        redis: Redis,
        settings: Settings,
        es: AsyncElasticsearch,
    ):
        super().__init__(name, pools, layout)
        self._redis = redis
        self._settings = settings
        self._search = SearchIndex(es, ShardedDatabase(pools, layout), redis, settings)

    async def apply(self, batch: Batch) -> None:
        typed = typed_program_events(batch)
        await self.write(batch, typed)
        events = list(typed.values())
        await self._tell_caches(events)
        await self._index(events)

    async def _index(self, events: Typed) -> None:
        """(Re)index each published program of the batch from the committed read model, with its
        sold-out state read just before (projections/search_index.py: the external version is the
        program's catalogue version, then the reading's stamp, so an older write loses)."""
        readings = await self._search.read({e.program_id for _, e in events})
        await self._search.write(readings)

    async def _tell_caches(self, events: Typed) -> None:
        """After commit, for every program in the batch (a redelivery repeats this harmlessly)."""
        for program_id in {e.program_id for _, e in events if isinstance(e, ProgramCreated)}:
            await add_program_to_bloom(self._redis, self._settings, program_id)
        for program_id in {e.program_id for _, e in events}:
            await invalidate_program(self._redis, self._settings, program_id)


def typed_program_events(batch: Batch) -> dict[Delivered, tuple[EventEnvelope, ProgramEvent]]:
    """The batch's program events by position, each payload validated once whatever the number
    of databases."""
    return {r.position: (r.item, e) for r in batch if (e := _program_event(r.item)) is not None}


def _program_event(envelope: EventEnvelope) -> ProgramEvent | None:
    event: DomainEvent = payload_of(envelope)
    return event if isinstance(event, ProgramEvent) else None


def _newest_versions(events: Typed) -> dict[int, int]:
    """Per program of ``events``, the newest aggregate version among them."""
    newest: dict[int, int] = {}
    for env, e in events:
        newest[e.program_id] = max(newest.get(e.program_id, 0), env.aggregate_version)
    return newest
