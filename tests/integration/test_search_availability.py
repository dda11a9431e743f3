"""The search documents' sold-out state against real Redis, Postgres and Elasticsearch: the search
availability processor reads the inventory's remaining counts after a batch of order events and
writes a program's document only when a category sold out or came back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest_asyncio
from elasticsearch import AsyncElasticsearch

from events.envelope import EventEnvelope
from events.order import OrderCancelled
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import remaining_counts, search_availability
from infra.search import index_name
from infra.settings import Settings
from projections.batch import Delivered, Positioned
from projections.search_availability import SearchAvailabilityProjector
from projections.search_index import SearchIndex, document_version
from tests.program_rows import STARTS, InsertedProgram, insert_program, next_id, rename_program


@dataclass
class Program:
    """A program on sale (two show times: two categories, then one) whose inventory the test sets."""

    inserted: InsertedProgram
    index: SearchIndex
    es: AsyncElasticsearch
    redis: Any
    settings: Settings

    @property
    def id(self) -> int:
        return self.inserted.id

    async def remaining(self, *counts: int) -> None:
        categories = [c for show in self.inserted.ticket_category_ids for c in show]
        await self.redis.hset(remaining_counts(self.id), mapping=dict(zip(map(str, categories), counts, strict=True)))

    async def document(self) -> dict[str, Any]:
        found = await self.es.get(index=index_name(self.settings.elasticsearch, "program"), id=str(self.id))
        return {"version": found["_version"], **found["_source"]}


@pytest_asyncio.fixture
async def program(isolated: Settings, pools, redis, es) -> AsyncIterator[Program]:
    db = ShardedDatabase(pools, shard_layout(isolated))
    inserted = await insert_program(db)
    yield Program(inserted, SearchIndex(es, db, redis, isolated), es, redis, isolated)
    await redis.delete(remaining_counts(inserted.id), search_availability(inserted.id))


def _cancelled(settings: Settings, program_id: int, offset: int) -> list[Positioned[EventEnvelope]]:
    event = OrderCancelled(order_number=next_id(), user_id=next_id(), program_id=program_id)
    return [
        Positioned(Delivered(settings.kafka.topic("order"), 0, offset), EventEnvelope.wrap(event, aggregate_version=2))
    ]


async def test_the_document_turns_sold_out_with_the_last_ticket_and_back_when_one_returns(program: Program):
    processor = SearchAvailabilityProjector("test.search-availability", program.index)
    await program.remaining(0, 0, 3)

    await processor.apply(_cancelled(program.settings, program.id, 0))
    some_left = await program.document()
    await program.remaining(0, 0, 0)
    await processor.apply(_cancelled(program.settings, program.id, 1))
    none_left = await program.document()
    await program.remaining(0, 1, 0)
    await processor.apply(_cancelled(program.settings, program.id, 2))
    one_back = await program.document()

    second_day = (STARTS + timedelta(days=1)).isoformat()
    assert (some_left["soldOut"], some_left["availableShowTimes"]) == (False, [second_day])
    assert (none_left["soldOut"], none_left["availableShowTimes"]) == (True, [])
    assert (one_back["soldOut"], one_back["availableShowTimes"]) == (False, [STARTS.isoformat()])


async def test_counts_that_change_no_sold_out_state_write_nothing_and_redelivery_neither(program: Program):
    processor = SearchAvailabilityProjector("test.search-availability", program.index)
    await program.remaining(5, 0, 3)
    batch = _cancelled(program.settings, program.id, 0)
    await processor.apply(batch)
    written = await program.document()

    await program.remaining(2, 0, 1)
    await processor.apply(_cancelled(program.settings, program.id, 1))
    await processor.apply(batch)

    assert await program.document() == written


async def test_a_later_reading_wins_whatever_order_the_writes_arrive_in(program: Program):
    await program.remaining(0, 0, 0)
    [earlier] = await program.index.read([program.id])
    await program.remaining(0, 0, 4)
    [later] = await program.index.read([program.id])

    await program.index.write([later])
    await program.index.write([earlier])

    assert later.stamp > earlier.stamp
    assert (await program.document())["soldOut"] is False


async def test_a_reading_nobody_wrote_is_written_by_the_next_batch(program: Program):
    processor = SearchAvailabilityProjector("test.search-availability", program.index)
    await program.remaining(0, 0, 1)
    await processor.apply(_cancelled(program.settings, program.id, 0))
    await program.remaining(0, 0, 0)
    [unwritten] = await program.index.read([program.id])  # a processor that stopped here

    await processor.apply(_cancelled(program.settings, program.id, 0))

    assert unwritten.unwritten
    assert (await program.document())["soldOut"] is True


async def test_a_write_refused_for_a_newer_catalogue_loads_the_program_again(program: Program, pools):
    await program.remaining(0, 0, 0)
    [reading] = await program.index.read([program.id])
    await rename_program(ShardedDatabase(pools, shard_layout(program.settings)), program.id, "五月天 加场")
    # The program projector indexed the new title with an earlier reading, between this one's
    # reading and its write.
    await program.es.index(
        index=index_name(program.settings.elasticsearch, "program"),
        id=str(program.id),
        document={"id": str(program.id), "title": "五月天 加场"},
        version=document_version(2, reading.stamp - 1),
        version_type="external",
    )

    await program.index.write([reading])

    document = await program.document()
    assert (document["title"], document["soldOut"]) == ("五月天 加场", True)
    assert document["version"] == document_version(2, reading.stamp)
