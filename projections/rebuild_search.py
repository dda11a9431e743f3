"""`damai rebuild search` and `damai verify search`: the program search index built anew from the
read model beside the live one while the system runs, then made live by moving its live name (an
alias, infra/search.py); and the live documents checked against those a rebuild would write.

A rebuild, in order:

1. a new concrete index, ``<live name>-<UTC time>`` (the template's pattern gives it its mapping);
2. every visible program's document written to it as the live writers write them (``SearchIndex``
   pointed at it: the same reading, load, document and external version), the programs read table
   by table (a full route, on purpose);
3. the live name moved to it in one ``_aliases`` call: live writes go there from then on;
4. the old index frozen for writes: Elasticsearch answers once the writes in flight to it are done
   (so no timed grace is needed), and a writer refused after that retries through the live name,
   into the new index;
5. the catch-up: a document whose version in the old index is above the new one's (or that the new
   one lacks) was written by a live writer during the rebuild; its program is read again and
   written to the new index (external versions make a repeat harmless);
6. the old index deleted, or kept frozen (``rebuild.keep_replaced``).

An index of the live name itself (from before live names were aliases) cannot be kept: its name
must become the alias. It is frozen and caught up from first (4, 5), then the ``_aliases`` call
of 3 deletes it and makes its name the alias; live writes wait (retrying) in between.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import remaining_counts
from infra.search import (
    LiveIndex,
    concrete_index_name,
    freeze_writes,
    index_name,
    live_index,
    move_live_name,
    scan_documents,
    thaw_writes,
)
from infra.settings import Settings
from projections.search_index import SearchIndex, visible_program
from queries.search import RESULT_WINDOW
from queries.search_document import program_search_document, sold_out_categories
from queries.views.programs import full_route_program_ids

HASH_MODULUS = 1 << 64


def document_digest(document_id: str, source: Mapping[str, Any]) -> int:
    """A document's id and source as canonical JSON (sorted keys), hashed to 64 bits."""
    canonical = document_id.encode() + b"\n" + orjson.dumps(source, option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big")


@dataclass(frozen=True)
class DocumentsHash:
    """A set of documents' count and the sum of their digests: the same whatever order they come in."""

    count: int
    value: int

    @classmethod
    def of(cls, digests: Iterable[int]) -> DocumentsHash:
        found = list(digests)
        return cls(len(found), sum(found) % HASH_MODULUS)

    def __str__(self) -> str:
        return f"{self.count} documents, hash {self.value:016x}"


def _page_size(settings: Settings) -> int:
    """Programs per batch, and hits per scanned page (no more than a search may return)."""
    return min(settings.rebuild.batch_size, RESULT_WINDOW)


def _chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    return (ids[start : start + size] for start in range(0, len(ids), size))


async def index_digests(es: AsyncElasticsearch, index: str, page_size: int) -> dict[str, int]:
    """Each document's digest, by id, as Elasticsearch searches the index now."""
    digests: dict[str, int] = {}
    async for hits in scan_documents(es, index, page_size=page_size, source=True):
        digests.update((h["_id"], document_digest(h["_id"], h["_source"])) for h in hits)
    return digests


async def _versions(es: AsyncElasticsearch, index: str, page_size: int) -> dict[str, int]:
    versions: dict[str, int] = {}
    async for hits in scan_documents(es, index, page_size=page_size, source=False):
        versions.update((h["_id"], int(h["_version"])) for h in hits)
    return versions


@dataclass(frozen=True)
class SearchRebuilt:
    new_index: str
    old_index: str | None
    old_kept: bool
    documents: int
    """Written by the copy from the read model."""
    caught_up: int
    """Written again: newer in the old index than in the new one (live writes during the rebuild)."""
    old_hash: DocumentsHash | None
    new_hash: DocumentsHash
    """Taken after the catch-up; live writes reach the new index from the move on, so on a busy
    system the two may differ by what changed since."""
    seconds: float


class SearchRebuild:
    """One rebuild of the program search index, step by step (the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        es: AsyncElasticsearch,
        db: ShardedDatabase,
        redis: Redis,
        old: LiveIndex | None,
        new: str,
        started: float,
    ):
        self._settings = settings
        self._es = es
        self._db = db
        self._live = index_name(settings.elasticsearch, "program")
        self._index = SearchIndex(es, db, redis, settings, index=new)
        self._page_size = _page_size(settings)
        self._started = started
        self._documents = 0
        self.old = old
        self.new = new

    @classmethod
    async def begin(
        cls, settings: Settings, es: AsyncElasticsearch, db: ShardedDatabase, redis: Redis
    ) -> SearchRebuild:
        """Find what the live name stands for, and create the new index beside it."""
        started = time.monotonic()
        live = index_name(settings.elasticsearch, "program")
        old = await live_index(es, live)
        new = concrete_index_name(live, datetime.now(UTC))
        await es.indices.create(index=new)
        return cls(settings, es, db, redis, old, new, started)

    async def fill(self) -> int:
        """Write every visible program's document to the new index; returns how many."""
        async for program_ids in full_route_program_ids(self._db):
            for chunk in _chunks(program_ids, self._page_size):
                self._documents += await self._index.write(await self._index.read(chunk))
        return self._documents

    async def finish(self) -> SearchRebuilt:
        """Make the new index live, catch up with the writes the old one took meanwhile, and delete
        or keep the old one."""
        old, caught_up, old_hash = self.old, 0, None
        if old is None:
            await move_live_name(self._es, self._live, None, self.new)
        elif old.aliased:
            await move_live_name(self._es, self._live, old, self.new)
            caught_up, old_hash = await self._catch_up(old.name)
        else:
            caught_up, old_hash = await self._catch_up(old.name)
            await move_live_name(self._es, self._live, old, self.new)
        await self._es.indices.refresh(index=self.new)
        new_hash = DocumentsHash.of((await index_digests(self._es, self.new, self._page_size)).values())
        kept = old is not None and old.aliased and self._settings.rebuild.keep_replaced
        if old is not None and old.aliased and not kept:
            await self._es.indices.delete(index=old.name)
        return SearchRebuilt(
            new_index=self.new,
            old_index=old.name if old else None,
            old_kept=kept,
            documents=self._documents,
            caught_up=caught_up,
            old_hash=old_hash,
            new_hash=new_hash,
            seconds=time.monotonic() - self._started,
        )

    async def abandon(self) -> None:
        """Undo a rebuild that stopped before its move: delete the new index, and let the old one
        take writes again if it was frozen. After the move there is nothing to undo (rebuild again
        to finish the catch-up)."""
        now = await live_index(self._es, self._live)
        if now is not None and now.name == self.new:
            return
        if self.old is not None and now == self.old:
            await thaw_writes(self._es, self.old.name)
        await self._es.options(ignore_status=404).indices.delete(index=self.new)

    async def _catch_up(self, old: str) -> tuple[int, DocumentsHash]:
        """Freeze the old index, write again each program whose document there is newer than in the
        new index (or missing from it); returns how many, and the frozen old index's hash."""
        await freeze_writes(self._es, old)
        await self._es.indices.refresh(index=f"{old},{self.new}")
        there = await _versions(self._es, self.new, self._page_size)
        versions = await _versions(self._es, old, self._page_size)
        # An id that names no program (a document put there by hand) has nothing to catch up with.
        behind = sorted(int(i) for i, v in versions.items() if v > there.get(i, 0) and i.isdecimal())
        caught_up = 0
        for chunk in _chunks(behind, self._page_size):
            caught_up += await self._index.write(await self._index.read(chunk))
        old_hash = DocumentsHash.of((await index_digests(self._es, old, self._page_size)).values())
        return caught_up, old_hash


async def rebuild_search(
    settings: Settings, es: AsyncElasticsearch, db: ShardedDatabase, redis: Redis
) -> SearchRebuilt:
    """Build the program search index anew from the read model and make it live (the module's steps)."""
    rebuild = await SearchRebuild.begin(settings, es, db, redis)
    try:
        await rebuild.fill()
        return await rebuild.finish()
    except BaseException:
        await rebuild.abandon()
        raise


@dataclass(frozen=True)
class SearchVerified:
    index: str | None
    """The concrete index behind the live name; None when there is none."""
    indexed: DocumentsHash
    fresh: DocumentsHash
    """The documents a rebuild would write now."""
    missing: list[str]
    extra: list[str]
    different: list[str]

    @property
    def agrees(self) -> bool:
        return not (self.missing or self.extra or self.different)


async def verify_search(
    settings: Settings, es: AsyncElasticsearch, db: ShardedDatabase, redis: Redis
) -> SearchVerified:
    """Compare the documents behind the live name with those built from the read model (and the
    inventory's remaining counts, for the sold-out state), writing nothing: not even the
    availability's bookkeeping a rebuild's reading updates."""
    page_size = _page_size(settings)
    live = await live_index(es, index_name(settings.elasticsearch, "program"))
    indexed = await index_digests(es, live.name, page_size) if live else {}
    fresh: dict[str, int] = {}
    async for program_ids in full_route_program_ids(db):
        for chunk in _chunks(program_ids, page_size):
            fresh.update(await _fresh_digests(db, redis, chunk))
    return SearchVerified(
        index=live.name if live else None,
        indexed=DocumentsHash.of(indexed.values()),
        fresh=DocumentsHash.of(fresh.values()),
        missing=sorted(fresh.keys() - indexed.keys()),
        extra=sorted(indexed.keys() - fresh.keys()),
        different=sorted(i for i in fresh.keys() & indexed.keys() if fresh[i] != indexed[i]),
    )


async def _fresh_digests(db: ShardedDatabase, redis: Redis, program_ids: Sequence[int]) -> dict[str, int]:
    """The digest of each visible program's document as the live writers would make it now."""
    loaded = [found for found in await asyncio.gather(*(visible_program(db, p) for p in program_ids)) if found]
    async with redis.pipeline(transaction=False) as pipe:
        for _, detail in loaded:
            await pipe.hgetall(remaining_counts(detail.id))
        replies = await pipe.execute()
    digests = {}
    for (_, detail), counts in zip(loaded, replies, strict=True):
        document = program_search_document(detail, sold_out_categories(_counts(counts)))
        digests[str(detail.id)] = document_digest(str(detail.id), document)
    return digests


def _counts(raw: Mapping[Any, Any]) -> dict[int, int]:
    """Remaining counts as the sold-out rule reads them: a count that is not a number is none."""
    counts = {}
    for category, count in raw.items():
        try:
            counts[int(category)] = int(count)
        except ValueError:
            continue
    return counts
