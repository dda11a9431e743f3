"""One asyncpg pool per shard database; which database holds a row is infra.postgres.routing's business."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import orjson
from asyncpg.connection import LoggedQuery

from infra.settings import PostgresSettings

# What a database that is down, restarting or out of reach looks like to a caller.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)

QueryObserver = Callable[[str, str], None]
"""Called with (database, query text) after each query; for per-shard metrics and tests."""


class ShardPools:
    """The pools of every shard database, by name and in shard order."""

    def __init__(self, settings: PostgresSettings, observer: QueryObserver | None = None):
        self._settings = settings
        self._observer = observer
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
                    init=self._connection_setup(db),
                )
                for db in s.databases
            )
        )
        self._pools = dict(zip(s.databases, pools, strict=True))

    def _connection_setup(self, database: str) -> Callable[[asyncpg.Connection], Awaitable[None]]:
        observer = self._observer

        async def init(conn: asyncpg.Connection) -> None:
            # jsonb columns travel as Python values (orjson both ways), not as JSON text.
            await conn.set_type_codec(
                "jsonb", encoder=_json_text, decoder=orjson.loads, schema="pg_catalog", format="text"
            )
            if observer is None:
                return
            # The pool's own reset on release is housekeeping, not a query of ours.
            housekeeping = conn.get_reset_query()

            def log_query(record: LoggedQuery) -> None:
                if record.query != housekeeping:
                    observer(database, record.query)

            conn.add_query_logger(log_query)

        return init

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

    async def check_reachable(self, database: str, timeout_s: float) -> None:
        """Raise unless ``database`` answers a query within ``timeout_s``."""
        await self._pools[database].fetchval("SELECT 1", timeout=timeout_s)


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()
