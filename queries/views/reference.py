"""Read queries on reference data (areas, categories). Every shard database holds a full copy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from infra.postgres.sharded import ShardedDatabase

AREA_COLUMNS = "id, name, level, parent_id, created_at"


@dataclass(frozen=True)
class AreaView:
    id: int
    name: str
    level: str
    parent_id: int | None
    created_at: datetime


def reference_pool(db: ShardedDatabase) -> asyncpg.Pool:
    """Any shard answers reference queries; the first is used so reads stay on one pool."""
    return db.pools[db.pools.databases[0]]


def _area(row: asyncpg.Record) -> AreaView:
    return AreaView(row["id"], row["name"], row["level"], row["parent_id"], row["created_at"])


async def list_areas(db: ShardedDatabase, *, parent_id: int | None = None) -> list[AreaView]:
    pool = reference_pool(db)
    if parent_id is None:
        rows = await pool.fetch(f"SELECT {AREA_COLUMNS} FROM area ORDER BY id")
    else:
        rows = await pool.fetch(f"SELECT {AREA_COLUMNS} FROM area WHERE parent_id = $1 ORDER BY id", parent_id)
    return [_area(r) for r in rows]


async def get_area(db: ShardedDatabase, area_id: int) -> AreaView | None:
    row = await reference_pool(db).fetchrow(f"SELECT {AREA_COLUMNS} FROM area WHERE id = $1", area_id)
    return _area(row) if row else None


async def existing_area_ids(db: ShardedDatabase, area_ids: list[int]) -> set[int]:
    rows = await reference_pool(db).fetch("SELECT id FROM area WHERE id = ANY($1::int[])", area_ids)
    return {r["id"] for r in rows}


@dataclass(frozen=True)
class CategoryView:
    id: int
    name: str
    parent_id: int | None
    sort_order: int


async def list_categories(db: ShardedDatabase) -> list[CategoryView]:
    rows = await reference_pool(db).fetch(
        "SELECT id, name, parent_id, sort_order FROM category ORDER BY sort_order, id"
    )
    return [CategoryView(r["id"], r["name"], r["parent_id"], r["sort_order"]) for r in rows]


async def category_parents(db: ShardedDatabase, category_ids: list[int]) -> dict[int, int | None]:
    """Existing categories among ``category_ids``, each with its parent (None for a top-level one)."""
    rows = await reference_pool(db).fetch(
        "SELECT id, parent_id FROM category WHERE id = ANY($1::int[])", category_ids
    )
    return {r["id"]: r["parent_id"] for r in rows}
