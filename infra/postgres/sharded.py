"""Pools plus layout: what every view function needs to reach the one table it reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from infra.postgres.pools import ShardPools
from infra.postgres.routing import Shard, ShardLayout

Row = TypeVar("Row")


@dataclass(frozen=True)
class ShardedDatabase:
    pools: ShardPools
    layout: ShardLayout

    async def fetch(self, shard: Shard, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run ``sql`` with ``{table}`` replaced by the shard's physical table, on its database."""
        return list(await self.pools[shard.database].fetch(sql.format(table=shard.table), *args))

    async def fetchrow(self, shard: Shard, sql: str, *args: Any) -> asyncpg.Record | None:
        record: asyncpg.Record | None = await self.pools[shard.database].fetchrow(sql.format(table=shard.table), *args)
        return record

    async def fetchval(self, shard: Shard, sql: str, *args: Any) -> Any:
        return await self.pools[shard.database].fetchval(sql.format(table=shard.table), *args)


def rows(cls: type[Row], records: Sequence[asyncpg.Record]) -> list[Row]:
    return [cls(**dict(r)) for r in records]


def row(cls: type[Row], record: asyncpg.Record | None) -> Row | None:
    return cls(**dict(record)) if record is not None else None
