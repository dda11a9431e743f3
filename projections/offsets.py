"""Per-partition offsets stored in the same transaction as a Postgres projector's writes.

Kafka delivers at least once; a projector that records the last offset it applied
beside its own rows can tell a redelivery from news, so replaying changes nothing.
The offsets advance by the rule in projections/batch.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import asyncpg

from projections.batch import NO_OFFSET, Delivered, Positioned, advance, report_gap, spans

T = TypeVar("T")


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
    batch = spans(r.position for r in records)
    topics = [topic for topic, _ in batch]
    partitions = [partition for _, partition in batch]
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
    advanced, gaps = advance(applied, batch)
    for gap in gaps:
        report_gap(projector, gap)
    fresh = [r for r in records if r.position.offset > applied[(r.position.topic, r.position.partition)]]
    # The rows are locked above, so the advanced offsets are set as they are.
    await conn.execute(
        "UPDATE projector_offset o SET last_offset = x.o, updated_at = now()"
        " FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)"
        " WHERE o.projector = $1 AND o.topic = x.t AND o.partition = x.p",
        projector,
        topics,
        partitions,
        list(advanced.values()),
    )
    return fresh


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
