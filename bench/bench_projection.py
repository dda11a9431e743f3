"""The projection both bench paths run: decoded envelopes into a Postgres table, offset-tracked."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from events.envelope import EventEnvelope
from events.reference import AreaCreated
from projections.batch import Delivered, Positioned
from projections.offsets import lowest_applied_offsets, skip_offsets, take_unapplied

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS bench_projection (
    projector text NOT NULL, area_id integer NOT NULL, name text NOT NULL, aggregate_version integer NOT NULL,
    PRIMARY KEY (projector, area_id))
"""


class BenchProjector:
    def __init__(self, name: str, pool: asyncpg.Pool):
        self.name = name
        self._pool = pool

    async def skip(self, positions: Sequence[Delivered]) -> None:
        await skip_offsets([self._pool], self.name, positions)

    async def applied(self) -> dict[tuple[str, int], int]:
        return await lowest_applied_offsets([self._pool], self.name)

    async def apply(self, batch: Sequence[Positioned[EventEnvelope]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await take_unapplied(conn, self.name, batch)
            rows = [
                (self.name, r.item.payload["areaId"], r.item.payload["name"], r.item.aggregate_version)
                for r in fresh
                if r.item.type == AreaCreated.event_type
            ]
            if rows:
                await conn.copy_records_to_table("bench_projection", records=rows)


async def projected(pool: asyncpg.Pool, name: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM bench_projection WHERE projector = $1", name))
