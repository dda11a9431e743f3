"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.settings import Settings


class Queries(list[tuple[str, str]]):
    """Every (database, query) the pools ran, in order."""

    def __call__(self, database: str, query: str) -> None:
        self.append((database, query))


@pytest_asyncio.fixture
async def db(isolated: Settings) -> AsyncIterator[tuple[ShardedDatabase, Queries]]:
    """The test's shards, with every query they run counted."""
    queries = Queries()
    pools = ShardPools(isolated.postgres, observer=queries)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(isolated)), queries
    await pools.stop()
