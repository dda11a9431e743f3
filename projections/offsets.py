"""Per-partition offset tracking stored in the same transaction as a projector's writes.

Kafka delivers at least once; a projector that records the last offset it applied
beside its own rows can tell a redelivery from news, so replaying changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
import structlog

from infra.metrics import PROJECTOR_GAPS

log = structlog.get_logger(__name__)

NO_OFFSET = -1


@dataclass(frozen=True)
class Delivered:
    """Where a record sat in the log."""

    topic: str
    partition: int
    offset: int


T = TypeVar("T")


@dataclass(frozen=True)
class Positioned(Generic[T]):
    position: Delivered
    item: T


async def take_unapplied(
    conn: asyncpg.Connection, projector: str, records: Sequence[Positioned[T]]
) -> list[Positioned[T]]:
    """Lock this projector's offsets for the batch's partitions, keep only records past them,
    and advance the offsets to the end of the batch.

    Must run inside the transaction that applies the returned records: if it rolls back,
    the offsets roll back with it.
    """
    if not records:
        return []
    if not conn.is_in_transaction():
        raise RuntimeError("take_unapplied must run inside the projection's transaction")
    highest: dict[tuple[str, int], int] = {}
    lowest: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.position.topic, r.position.partition)
        highest[key] = max(highest.get(key, NO_OFFSET), r.position.offset)
        lowest[key] = min(lowest.get(key, r.position.offset), r.position.offset)
    topics = [k[0] for k in highest]
    partitions = [k[1] for k in highest]
    await conn.execute(
        "INSERT INTO projector_offset (projector, topic, partition, last_offset)"
        " SELECT $1, t, p, $4 FROM unnest($2::text[], $3::int[]) AS x(t, p)"
        " ON CONFLICT DO NOTHING",
        projector,
        topics,
        partitions,
        NO_OFFSET,
    )
    rows = await conn.fetch(
        "SELECT o.topic, o.partition, o.last_offset FROM projector_offset o"
        " JOIN unnest($2::text[], $3::int[]) AS x(t, p) ON o.topic = x.t AND o.partition = x.p"
        " WHERE o.projector = $1 ORDER BY o.topic, o.partition FOR UPDATE OF o",
        projector,
        topics,
        partitions,
    )
    applied = {(r["topic"], r["partition"]): r["last_offset"] for r in rows}
    _report_gaps(projector, applied, lowest)
    fresh = [r for r in records if r.position.offset > applied[(r.position.topic, r.position.partition)]]
    await conn.execute(
        "UPDATE projector_offset o SET last_offset = greatest(o.last_offset, x.o), updated_at = now()"
        " FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)"
        " WHERE o.projector = $1 AND o.topic = x.t AND o.partition = x.p",
        projector,
        topics,
        partitions,
        list(highest.values()),
    )
    return fresh


def _report_gaps(projector: str, applied: dict[tuple[str, int], int], lowest: dict[tuple[str, int], int]) -> None:
    for (topic, partition), first in lowest.items():
        last = applied[topic, partition]
        if first > last + 1:
            report_gap(projector, topic, partition, last, first)


def report_gap(projector: str, topic: str, partition: int, last_applied: int, next_seen: int) -> None:
    """A batch began past the offset after the last one this projector applied. Offsets are
    consecutive (no transactions, no compaction), so the events in between were never seen here:
    acked without being applied and committed past (ADR 0003), or removed by retention before
    a rewind could read them. Nothing here can fetch them again; the projection has to be
    rebuilt by replay (docs/operations.md)."""
    PROJECTOR_GAPS.labels(projector=projector).inc()
    log.error(
        "projector.gap",
        projector=projector,
        topic=topic,
        partition=partition,
        last_applied=last_applied,
        next_seen=next_seen,
        missed=next_seen - last_applied - 1,
    )


async def skip_offsets(pools: Iterable[asyncpg.Pool], projector: str, positions: Sequence[Delivered]) -> None:
    """Count these positions as handled in each database (their events were dead-lettered), so
    that the next batch does not look like a gap. Call it after the batch around them."""
    if not positions:
        return
    records = [Positioned(p, None) for p in positions]
    for pool in pools:
        async with pool.acquire() as conn, conn.transaction():
            await take_unapplied(conn, projector, records)


async def lowest_applied_offsets(pools: Iterable[asyncpg.Pool], projector: str) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the last offset this projector applied in *every* database (the
    lowest of them); a partition some database has no offset for is left out: nothing of it was
    applied there."""
    lowest: dict[tuple[str, int], int] | None = None
    for pool in pools:
        async with pool.acquire() as conn:
            here = await applied_offsets(conn, projector)
        lowest = here if lowest is None else {tp: min(o, here[tp]) for tp, o in lowest.items() if tp in here}
    return {tp: o for tp, o in (lowest or {}).items() if o != NO_OFFSET}


async def applied_offsets(conn: asyncpg.Connection, projector: str) -> dict[tuple[str, int], int]:
    rows = await conn.fetch(
        "SELECT topic, partition, last_offset FROM projector_offset WHERE projector = $1", projector
    )
    return {(r["topic"], r["partition"]): r["last_offset"] for r in rows}
