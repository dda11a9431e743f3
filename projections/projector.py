"""Running a batched, idempotent projector over a Faust stream.

Faust acks a taken batch even when the handler raises, so a projector never lets
a batch fail: store outages are retried until they pass (the partition waits, order
is kept), and an event that cannot be applied at all goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from itertools import groupby
from typing import Any, NamedTuple, Protocol, TypeVar

import asyncpg
import structlog
from faust import Stream
from faust.types import EventT, StreamT
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import ReadOnlyError as RedisReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.envelope import EventEnvelope
from events.serialization import UndecodableEvent, decode
from infra.metrics import EVENTS_PROJECTED, PROJECTOR_RETRIES, ProcessorMetrics
from infra.postgres.pools import ShardPools
from infra.postgres.routing import Shard
from infra.search import search_unavailable
from infra.settings import WorkerSettings
from projections.batch import Delivered, Positioned
from projections.dead_letter import DeadLetters
from projections.offsets import lowest_applied_offsets, skip_offsets, take_unapplied

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Store outages: the batch waits and is applied again. Everything else is about the data and
# ends in the dead-letter topic, so nothing here may be a condition that passes on its own:
# a Redis that refuses writes while out of memory or loading its file is waited out, never a
# reason to drop a seat inventory event.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    RedisConnectionError,  # includes BusyLoadingError (the append-only file being read)
    RedisTimeoutError,
    RedisOutOfMemoryError,
    RedisReadOnlyError,
)


def is_transient(exc: BaseException) -> bool:
    """A store outage (retry), as opposed to an event the stores cannot take (dead-letter)."""
    return isinstance(exc, TRANSIENT_ERRORS) or search_unavailable(exc)


Batch = Sequence[Positioned[EventEnvelope]]


class Projector(Protocol):
    """Applies a batch of events to its stores; applying the same batch again changes nothing."""

    name: str

    async def apply(self, batch: Batch) -> None: ...

    async def skip(self, positions: Sequence[Delivered]) -> None:
        """The events at these positions went to the dead-letter topic: count them as handled
        (a projector that tracks offsets would otherwise see the next batch as a gap)."""
        ...

    async def applied(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition), the last offset this projector has applied for sure."""
        ...


class OffsetsInEveryShard:
    """``skip`` and ``applied`` of a projector that stores its offsets beside its rows in every
    shard database (``projections/offsets.py``)."""

    name: str
    _pools: ShardPools

    async def skip(self, positions: Sequence[Delivered]) -> None:
        await skip_offsets([pool for _, pool in self._pools], self.name, positions)

    async def applied(self) -> dict[tuple[str, int], int]:
        return await lowest_applied_offsets([pool for _, pool in self._pools], self.name)


async def run_projector(
    stream: StreamT[bytes], projector: Projector, dead_letters: DeadLetters, settings: WorkerSettings
) -> None:
    assert isinstance(stream, Stream)  # take_events is on the concrete stream, not on StreamT
    group = settings.projector_group
    metrics = ProcessorMetrics(group, projector.name.removeprefix(f"{group}."))
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        started = time.perf_counter()
        await _project_in_order(projector, events, dead_letters, settings)
        metrics.batch(len(events), time.perf_counter() - started)


async def _project_in_order(
    projector: Projector, events: Sequence[EventT[bytes]], dead_letters: DeadLetters, settings: WorkerSettings
) -> None:
    """Apply the batch; a message that cannot be decoded is dead-lettered and counted as handled
    in its place, after what came before it and before what follows, so the stored offsets only
    ever move forward without a hole: nothing after it is skipped or taken for a gap."""
    decoded: list[Positioned[EventEnvelope]] = []
    for event in events:
        message = event.message
        position = Delivered(message.topic, message.partition, message.offset)
        try:
            envelope = decode(message.value)
        except UndecodableEvent as exc:
            await _apply_until_done(projector, decoded, dead_letters, events, settings)
            decoded = []
            await dead_letters.send(event, reason="undecodable", error=str(exc))
            await retry_store_outages(projector.name, partial(projector.skip, [position]), settings)
            continue
        decoded.append(Positioned(position, envelope))
    await _apply_until_done(projector, decoded, dead_letters, events, settings)


async def _apply_until_done(
    projector: Projector,
    batch: Batch,
    dead_letters: DeadLetters,
    events: Sequence[EventT[bytes]],
    settings: WorkerSettings,
) -> None:
    if not batch:
        return
    try:
        await _apply_retrying(projector, batch, settings)
    except Exception as exc:  # noqa: BLE001 — what is not a store outage is about the data
        log.error("projector.batch_failed", projector=projector.name, error=repr(exc), size=len(batch))
        await _apply_one_by_one(projector, batch, dead_letters, events, settings)


async def _apply_one_by_one(
    projector: Projector,
    batch: Batch,
    dead_letters: DeadLetters,
    events: Sequence[EventT[bytes]],
    settings: WorkerSettings,
) -> None:
    """Isolate the event that cannot be applied; the rest of the batch still lands."""
    by_position = {(e.message.topic, e.message.partition, e.message.offset): e for e in events}
    for record in batch:
        try:
            await _apply_retrying(projector, [record], settings)
        except Exception as exc:  # noqa: BLE001
            p = record.position
            event = by_position[(p.topic, p.partition, p.offset)]
            await dead_letters.send(event, reason="unapplicable", error=repr(exc))
            await retry_store_outages(projector.name, partial(projector.skip, [p]), settings)


async def _apply_retrying(projector: Projector, batch: Batch, settings: WorkerSettings) -> None:
    """Apply, waiting out store outages with capped exponential backoff."""
    await retry_store_outages(projector.name, partial(projector.apply, batch), settings)
    EVENTS_PROJECTED.labels(projector=projector.name).inc(len(batch))
    # Per event at DEBUG only: a rebuild applies tens of thousands of events a second.
    if log.is_enabled_for(logging.DEBUG):
        for record in batch:
            event = record.item
            with structlog.contextvars.bound_contextvars(correlation_id=str(event.correlation_id)):
                log.debug("projector.applied", projector=projector.name, type=event.type, aggregate=event.aggregate_id)


async def retry_store_outages(name: str, call: Callable[[], Awaitable[None]], settings: WorkerSettings) -> None:
    """``call()`` until it succeeds, waiting out store outages with capped exponential backoff;
    any other error is raised."""
    delay = settings.retry_initial_s
    while True:
        try:
            await call()
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            PROJECTOR_RETRIES.labels(projector=name).inc()
            log.warning("projector.store_unavailable", projector=name, error=repr(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_max_s)


class RowWrite(NamedTuple):
    """One statement a projector runs on one shard table (``{table}`` in it is the table's name)."""

    shard: Shard
    statement: str
    args: tuple[Any, ...]


async def apply_row_writes(
    projector: str,
    pools: ShardPools,
    batch: Batch,
    typed: Mapping[Delivered, T],
    writes_of: Callable[[T], list[RowWrite]],
) -> None:
    """Apply a sharded projector's batch: each database takes the records it has not applied
    (``take_unapplied``) and runs, in one transaction with its offsets, the writes of their events
    that fall in it (all databases at once), table by table — each table's in the order of the events, a run of one
    statement as one ``executemany``. ``typed`` holds the batch's events of the projector
    (validated once), by position.

    Tables may go one after another because no statement reads a table other than its own (a
    projector's rows follow its events, never another table's rows): per table the order is the
    events', and a batch of orders is three runs (orders, tickets, seats), not three per order."""
    writes_at: dict[Delivered, list[RowWrite]] = {}  # each event's writes, made once for every database

    async def apply_to(database: str, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            fresh = [r.position for r in await take_unapplied(conn, projector, batch) if r.position in typed]
            for position in fresh:
                if position not in writes_at:
                    writes_at[position] = writes_of(typed[position])
            writes = [w for position in fresh for w in writes_at[position] if w.shard.database == database]
            writes.sort(key=lambda w: w.shard.table)  # stable: each table's writes keep their order
            for (table, statement), run in groupby(writes, key=lambda w: (w.shard.table, w.statement)):
                await conn.executemany(statement.format(table=table), [w.args for w in run])

    # The databases are independent (each its own transaction and offsets): they work at once.
    await asyncio.gather(*(apply_to(database, pool) for database, pool in pools))
