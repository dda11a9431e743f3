"""Projects reference data (areas, categories) into every shard database."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.reference import AreaCreated, CategoryCreated
from events.serialization import payload_of
from infra.postgres.pools import ShardPools
from projections.offsets import take_unapplied
from projections.projector import Batch, OffsetsInEveryShard

UPSERT_AREA = """
INSERT INTO area (id, name, level, parent_id, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, level = EXCLUDED.level, parent_id = EXCLUDED.parent_id,
    aggregate_version = EXCLUDED.aggregate_version, updated_at = now()
WHERE area.aggregate_version < EXCLUDED.aggregate_version
"""

UPSERT_CATEGORY = """
INSERT INTO category (id, name, parent_id, sort_order, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, parent_id = EXCLUDED.parent_id, sort_order = EXCLUDED.sort_order,
    aggregate_version = EXCLUDED.aggregate_version, updated_at = now()
WHERE category.aggregate_version < EXCLUDED.aggregate_version
"""

Typed = tuple[EventEnvelope, DomainEvent]


def _typed(batch: Batch) -> list[Typed]:
    """The batch's reference events with their payloads; other event types are not ours."""
    wanted = {AreaCreated.event_type, CategoryCreated.event_type}
    return [(r.item, payload_of(r.item)) for r in batch if r.item.type in wanted]


def _area_row(env: EventEnvelope, e: AreaCreated) -> tuple[Any, ...]:
    return (e.area_id, e.name, e.level.value, e.parent_id, env.aggregate_version, env.occurred_at)


def _category_row(env: EventEnvelope, e: CategoryCreated) -> tuple[Any, ...]:
    return (e.category_id, e.name, e.parent_id, e.sort_order, env.aggregate_version, env.occurred_at)


class ReferenceProjector(OffsetsInEveryShard):
    """Reference data is small and read everywhere, so every shard database holds a full copy."""

    def __init__(self, name: str, pools: ShardPools):
        self.name = name
        self._pools = pools

    async def apply(self, batch: Batch) -> None:
        await asyncio.gather(*(self._apply_to_database(pool, batch) for _, pool in self._pools))

    async def _apply_to_database(self, pool: asyncpg.Pool, batch: Batch) -> None:
        async with pool.acquire() as conn, conn.transaction():
            fresh = _typed(await take_unapplied(conn, self.name, batch))
            areas = [_area_row(env, e) for env, e in fresh if isinstance(e, AreaCreated)]
            categories = [_category_row(env, e) for env, e in fresh if isinstance(e, CategoryCreated)]
            if areas:
                await conn.executemany(UPSERT_AREA, areas)
            if categories:
                await conn.executemany(UPSERT_CATEGORY, categories)
