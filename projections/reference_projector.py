"""Projects reference data (areas) into every shard database and into Elasticsearch."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from events.envelope import EventEnvelope
from events.reference import AreaCreated
from events.serialization import payload_of
from infra.postgres.offsets import Positioned, take_unapplied
from infra.postgres.pools import ShardPools
from projections.projector import Batch

VERSION_CONFLICT = 409

UPSERT_AREA = """
INSERT INTO area (id, name, level, parent_id, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, level = EXCLUDED.level, parent_id = EXCLUDED.parent_id,
    aggregate_version = EXCLUDED.aggregate_version, updated_at = now()
WHERE area.aggregate_version < EXCLUDED.aggregate_version
"""


def _area_events(batch: Batch) -> list[tuple[EventEnvelope, AreaCreated]]:
    out = []
    for record in batch:
        event = payload_of(record.item) if record.item.type == AreaCreated.event_type else None
        if isinstance(event, AreaCreated):
            out.append((record.item, event))
    return out


class ReferenceProjector:
    """Areas are small and read everywhere, so every shard database holds a full copy."""

    def __init__(self, name: str, pools: ShardPools, es: AsyncElasticsearch, area_index: str):
        self.name = name
        self._pools = pools
        self._es = es
        self._area_index = area_index

    async def apply(self, batch: Batch) -> None:
        await asyncio.gather(*(self._apply_to_database(pool, batch) for _, pool in self._pools))
        await self._apply_to_search(batch)

    async def _apply_to_database(self, pool: asyncpg.Pool, batch: Batch) -> None:
        async with pool.acquire() as conn, conn.transaction():
            fresh: list[Positioned[EventEnvelope]] = await take_unapplied(conn, self.name, batch)
            rows = [
                (e.area_id, e.name, e.level.value, e.parent_id, env.aggregate_version, env.occurred_at)
                for env, e in _area_events(fresh)
            ]
            if rows:
                await conn.executemany(UPSERT_AREA, rows)

    async def _apply_to_search(self, batch: Batch) -> None:
        actions: list[dict[str, Any]] = [
            {
                "_op_type": "index",
                "_index": self._area_index,
                "_id": str(e.area_id),
                "version": env.aggregate_version,
                "version_type": "external",
                "_source": {
                    "id": e.area_id,
                    "name": e.name,
                    "level": e.level.value,
                    "parentId": e.parent_id,
                    "createdAt": env.occurred_at.isoformat(),
                },
            }
            for env, e in _area_events(batch)
        ]
        if not actions:
            return
        _, errors = await async_bulk(self._es, actions, raise_on_error=False, raise_on_exception=True)
        assert isinstance(errors, list)  # with raise_on_error=False the errors come back as a list
        real = [err for err in errors if _status(err) != VERSION_CONFLICT]
        if real:
            raise RuntimeError(f"search indexing failed: {real[:3]}")


def _status(bulk_error: dict[str, dict[str, Any]]) -> int:
    return int(next(iter(bulk_error.values())).get("status", 0))
