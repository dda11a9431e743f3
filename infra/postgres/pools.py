"""One asyncpg pool per shard database, behind a small router interface."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Protocol

import asyncpg

from infra.settings import PostgresSettings


class ShardRouter(Protocol):
    """Maps a routing key to the shard database that holds it (the layout lives in one place)."""

    def database_for(self, key: int) -> str: ...


class ShardPools:
    """The pools of every shard database, by name and in shard order."""

    def __init__(self, settings: PostgresSettings):
        self._settings = settings
        self._pools: dict[str, asyncpg.Pool] = {}

    async def start(self) -> None:
        s = self._settings
        pools = await asyncio.gather(
            *(
                asyncpg.create_pool(
                    s.dsn(db),
                    min_size=s.pool_min_size,
                    max_size=s.pool_max_size,
                    command_timeout=s.command_timeout_s,
                    timeout=s.connect_timeout_s,
                    server_settings={"search_path": s.schema_name},
                )
                for db in s.databases
            )
        )
        self._pools = dict(zip(s.databases, pools, strict=True))

    async def stop(self) -> None:
        await asyncio.gather(*(p.close() for p in self._pools.values()))
        self._pools = {}

    def __getitem__(self, database: str) -> asyncpg.Pool:
        return self._pools[database]

    def __iter__(self) -> Iterator[tuple[str, asyncpg.Pool]]:
        return iter(self._pools.items())

    @property
    def schema_name(self) -> str:
        return self._settings.schema_name

    @property
    def databases(self) -> list[str]:
        return list(self._pools)

    def routed(self, router: ShardRouter, key: int) -> asyncpg.Pool:
        return self._pools[router.database_for(key)]

    async def check_reachable(self, database: str, timeout_s: float) -> None:
        """Raise unless ``database`` answers a query within ``timeout_s``."""
        await self._pools[database].fetchval("SELECT 1", timeout=timeout_s)
