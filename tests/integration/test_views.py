"""Each access path of the program read model reads exactly one shard table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio

from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from queries.views import programs


class QueryLog:
    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    def __call__(self, database: str, query: str) -> None:
        self.queries.append((database, query))

    def shards_touched(self) -> set[tuple[str, str]]:
        """(database, physical table) of every logged query."""
        touched = set()
        for database, query in self.queries:
            words = query.replace("(", " ").split()
            touched.add((database, words[words.index("FROM") + 1] if "FROM" in words else words[2]))
        return touched


@pytest_asyncio.fixture
async def db(isolated) -> AsyncIterator[tuple[ShardedDatabase, QueryLog]]:
    log = QueryLog()
    pools = ShardPools(isolated.postgres, observer=log)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(isolated)), log
    await pools.stop()


async def test_every_access_path_touches_exactly_one_shard_table(db):
    sharded, log = db
    program_id = 7_700_000_001
    paths: dict[str, Callable[[], Awaitable[object]]] = {
        "program": lambda: programs.get_program(sharded, program_id),
        "show times": lambda: programs.show_times_of(sharded, program_id),
        "ticket categories": lambda: programs.ticket_categories_of(sharded, program_id),
        "seats": lambda: programs.seats_of(sharded, program_id),
    }
    touched = {}
    for name, path in paths.items():
        log.queries.clear()
        await path()
        touched[name] = (len(log.queries), log.shards_touched())

    assert {name: count for name, (count, _) in touched.items()} == dict.fromkeys(paths, 1)
    assert all(len(shards) == 1 for _, shards in touched.values())
