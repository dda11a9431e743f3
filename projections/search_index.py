"""Writing programs' search documents, with their sold-out state.

Two writers share this: the program projector after a catalogue change, and the search
availability processor after holds and their endings (projections/search_availability.py). Each
one, for a program:

1. reads the availability (``lua/search_availability.lua``): the ticket categories with no ticket
   left by the inventory's remaining counts, and the reading's *stamp* (Redis' clock in ms,
   strictly increasing per program), new only when the sold-out categories changed;
2. then loads the program from its shard, with the row's aggregate version (the newest catalogue
   event applied);
3. writes the document with the external version ``catalogue version << STAMP_BITS | stamp``
   (``external_gte``).

So a newer catalogue always wins, and of two documents of one catalogue version, the later
reading. A writer whose document is refused (a version conflict) looks at the version there: a
stamp as new as its own means the document already says what it read (a redelivery, a replay, a
later reading); an older stamp under a newer catalogue means the program changed after the load,
so it loads again and writes again. The script remembers the highest stamp written ("indexed"),
so a reading written by nobody (a crash between reading and writing) is written by the next
reading of the program, whatever its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from infra.postgres.sharded import ShardedDatabase
from infra.redis import lua_script
from infra.redis_keys import remaining_counts, search_availability
from infra.search import SearchBusy, bulk_index_versioned, document_versions, index_name
from infra.settings import Settings
from queries.detail import HIDDEN_STATUSES, ProgramDetail, assemble_detail
from queries.search_document import program_search_document
from queries.views.programs import get_program, show_times_of, ticket_categories_of

log = structlog.get_logger(__name__)

STAMP_BITS = 43
"""Low bits of a document's version that hold the stamp: milliseconds, enough until 2248."""
CATALOGUE_VERSIONS = 1 << (63 - STAMP_BITS)
"""Catalogue versions the high bits hold (Elasticsearch's versions are signed 64-bit)."""


def document_version(catalogue_version: int, stamp: int) -> int:
    if not 0 <= catalogue_version < CATALOGUE_VERSIONS or not 0 <= stamp < 1 << STAMP_BITS:
        raise ValueError(f"no document version for catalogue version {catalogue_version}, stamp {stamp}")
    return catalogue_version << STAMP_BITS | stamp


def stamp_of(version: int) -> int:
    return version & ((1 << STAMP_BITS) - 1)


@dataclass(frozen=True)
class Reading:
    """A program's availability as ``lua/search_availability.lua`` read it."""

    program_id: int
    stamp: int
    sold_out: frozenset[int]
    unwritten: bool
    """No document has been written with this stamp yet."""


class SearchIndex:
    def __init__(
        self, es: AsyncElasticsearch, db: ShardedDatabase, redis: Redis, settings: Settings, index: str | None = None
    ):
        """Documents go to the live name, or to ``index`` (a rebuild's). Only writes through the live
        name are recorded as indexed: a reading written elsewhere alone is written again by the
        next reader of the program."""
        live = index_name(settings.elasticsearch, "program")
        self._es = es
        self._db = db
        self._redis = redis
        self._script = lua_script(redis, "search_availability")
        self._index = index or live
        self._records_indexed = self._index == live
        self._attempts = settings.search_availability.write_attempts

    async def read(self, program_ids: Iterable[int]) -> list[Reading]:
        """The availability of each program, in one round trip."""
        ids = sorted(set(program_ids))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in ids:
                await self._script(keys=[remaining_counts(p), search_availability(p)], args=["read"], client=pipe)
            replies = await pipe.execute()
        return [
            Reading(p, int(stamp), frozenset(int(c) for c in categories), bool(int(write)))
            for p, (write, stamp, *categories) in zip(ids, replies, strict=True)
        ]

    async def write(self, readings: Sequence[Reading]) -> int:
        """Index each program's document with its reading; drafts and unknown programs have none.
        Returns how many documents now say what their reading did."""
        pending = {r.program_id: r for r in readings}
        written: list[Reading] = []
        for _ in range(self._attempts):
            loaded = await asyncio.gather(*(visible_program(self._db, p) for p in pending))
            visible = [(pending[d.id], version, d) for version, d in filter(None, loaded)]
            refused = await bulk_index_versioned(self._es, [self._action(r, v, d) for r, v, d in visible])
            written += [r for r, _, d in visible if str(d.id) not in refused]
            there = await document_versions(self._es, self._index, sorted(refused))
            # Refused: a document as new as the reading is there already, or the catalogue changed
            # since the load (load again).
            retry = {int(i): pending[int(i)] for i, v in there.items() if stamp_of(v) < pending[int(i)].stamp}
            written += [pending[int(i)] for i in refused if int(i) not in retry]
            pending = retry
            if not pending:
                break
        else:
            raise SearchBusy(f"search documents of programs {sorted(pending)} kept changing under their writes")
        if self._records_indexed:
            await self._mark_indexed(written)
        return len(written)

    def _action(self, reading: Reading, catalogue_version: int, detail: ProgramDetail) -> dict[str, object]:
        return {
            "_op_type": "index",
            "_index": self._index,
            "_id": str(detail.id),
            "version": document_version(catalogue_version, reading.stamp),
            "version_type": "external_gte",
            "_source": program_search_document(detail, reading.sold_out),
        }

    async def _mark_indexed(self, written: Sequence[Reading]) -> None:
        if not written:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for r in written:
                p = r.program_id
                await self._script(
                    keys=[remaining_counts(p), search_availability(p)], args=["indexed", r.stamp], client=pipe
                )
            await pipe.execute()


async def visible_program(db: ShardedDatabase, program_id: int) -> tuple[int, ProgramDetail] | None:
    """A visible program's catalogue version and detail, read after its availability."""
    program = await get_program(db, program_id)
    if program is None or program.status in HIDDEN_STATUSES:
        return None
    show_times, categories = await asyncio.gather(show_times_of(db, program_id), ticket_categories_of(db, program_id))
    return program.aggregate_version, assemble_detail(program, show_times, categories)
