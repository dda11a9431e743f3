"""Per-partition offset tracking stored in the same transaction as a projector's writes.

Kafka delivers at least once; a projector that records the last offset it applied
beside its own rows can tell a redelivery from news, so replaying changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg

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
    for r in records:
        key = (r.position.topic, r.position.partition)
        highest[key] = max(highest.get(key, NO_OFFSET), r.position.offset)
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


async def applied_offsets(conn: asyncpg.Connection, projector: str) -> dict[tuple[str, int], int]:
    rows = await conn.fetch(
        "SELECT topic, partition, last_offset FROM projector_offset WHERE projector = $1", projector
    )
    return {(r["topic"], r["partition"]): r["last_offset"] for r in rows}
