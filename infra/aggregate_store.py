"""The command side's aggregates: loaded from a snapshot in Redis or from their events on Kafka,
saved by appending their new events to Kafka (ADR 0006).

A save claims the next versions in the snapshot first (``lua/aggregate_claim.lua``: only one of
two commands that loaded the same version can), appends the events with acks=all, then settles
the claim. A claim that never settles — the append failed, or the process died — is past its
deadline rebuilt from the log, which then holds the events or does not: the log decides, never
the snapshot. So a command sees every event appended for its aggregate before it, whatever the
projectors' lag.

An aggregate with no snapshot at all is new when the log's *snapshot coverage* says so (ADR 0007):
per partition, an offset below which every event's aggregate holds a snapshot. Only what was
appended since is read — its aggregates must all hold snapshots at least as new, or the partition
loses its coverage and is read from the start, as it is when it has none.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

import orjson
import structlog
from aiokafka.structs import ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from aggregates.base import Aggregate
from commands.ports import ConcurrentChange
from events.envelope import EventEnvelope
from events.serialization import UndecodableEvent, decode
from infra.kafka import EventPublisher, end_offsets, partition_batches, read_aggregate_events
from infra.redis import LuaScripts
from infra.redis_keys import aggregate_snapshot, snapshot_coverage
from infra.settings import Settings

log = structlog.get_logger(__name__)

A = TypeVar("A", bound=Aggregate)

# While another command's claim is pending, a load looks again after this long.
PENDING_POLL_S = 0.02
# Snapshots a rebuild writes per round trip.
RESTORE_BATCH = 1_000


class _SnapshotAppeared:
    """The aggregate gained a snapshot while the store checked the log: load again."""


APPEARED = _SnapshotAppeared()


class AggregateStore:
    def __init__(self, settings: Settings, redis: Redis, scripts: LuaScripts, publisher: EventPublisher):
        self._settings = settings
        self._redis = redis
        self._scripts = scripts
        self._publisher = publisher
        # An append the API gave up on may still be retried by the producer until its request
        # times out; a claim stays pending at least that long before the log is asked instead.
        self.pending_ms = int(settings.api.command_ack_timeout_s * 1000) + 2 * settings.kafka.request_timeout_ms

    def _key(self, aggregate_id: str) -> str:
        return aggregate_snapshot(aggregate_id, self._settings.kafka.topic_prefix)

    async def load(self, cls: type[A], aggregate_id: str) -> A | None:
        key = self._key(aggregate_id)
        deadline = time.monotonic() + self.pending_ms / 1000
        while True:
            state, token, pending_until = cast(
                list[bytes | None], await self._redis.hmget(key, ["state", "token", "pending_until"])
            )
            pending = int(pending_until or 0)
            if pending == 0 and state is not None:
                aggregate = cls.from_snapshot(state)
                if aggregate is not None:
                    return aggregate
            if token is None:
                found = await self._without_snapshot(cls, aggregate_id)
                if isinstance(found, _SnapshotAppeared):
                    continue
                return found
            if pending == 0 or pending <= _now_ms() or time.monotonic() > deadline:
                return await self._rebuild(cls, aggregate_id, token)
            await asyncio.sleep(PENDING_POLL_S)

    async def save(self, aggregate: Aggregate, correlation_id: uuid.UUID | None) -> list[uuid.UUID]:
        decided = aggregate.outbox()
        if not decided:
            return []
        key = self._key(aggregate.id)
        state = aggregate.snapshot()
        token = uuid.uuid4().hex
        loaded = aggregate.version - len(decided)
        claimed = await self._scripts["aggregate_claim"](
            keys=[key], args=[loaded, aggregate.version, token, state, _now_ms() + self.pending_ms]
        )
        if not claimed:
            raise ConcurrentChange(
                f"{aggregate.id} changed while this command was decided; retry",
                details={"aggregateId": aggregate.id},
            )
        envelopes = [
            EventEnvelope.wrap(
                d.event, aggregate_version=d.version, occurred_at=d.occurred_at, correlation_id=correlation_id
            )
            for d in decided
        ]
        # Left pending on failure: whether Kafka got the events is for the log to say (see load).
        await self._publisher.append(envelopes, self._settings.api.command_ack_timeout_s)
        await self._scripts["aggregate_settle"](keys=[key], args=[token, aggregate.version, token, state])
        return [e.event_id for e in envelopes]

    async def _without_snapshot(self, cls: type[A], aggregate_id: str) -> A | _SnapshotAppeared | None:
        """None when the partition's coverage proves the aggregate new; otherwise the aggregate from
        the log (or ``APPEARED``, when another command created it meanwhile)."""
        topic = self._settings.kafka.topic(cls.topic_family)
        partition = await self._publisher.partition_of(topic, aggregate_id)
        coverage, field = snapshot_coverage(topic), str(partition.partition)
        covered = await self._redis.hget(coverage, field)
        if covered is None:
            return await self._rebuild(cls, aggregate_id, None)
        since = int(covered)
        records, end = await self._publisher.records_since(partition, since)
        newest = _newest_versions(records)
        stored = await self._stored_versions(list(newest))
        behind = [key for key, version in newest.items() if stored[key] < version]
        if behind or end < since:
            # Redis lost writes (a crash between AOF fsyncs, a restore), a snapshot was deleted, or
            # someone else appended: this partition's snapshots are no proof until rebuilt.
            await self._redis.hdel(coverage, field)
            log.warning(
                "aggregate.snapshot_coverage_lost",
                topic=topic,
                partition=partition.partition,
                covered=since,
                end=end,
                without_snapshot=len(behind),
                example=behind[0].decode(errors="replace") if behind else None,
            )
            return await self._rebuild(cls, aggregate_id, None)
        if end > since:
            await self._scripts["aggregate_coverage_advance"](keys=[coverage], args=[field, since, end])
        return APPEARED if aggregate_id.encode() in newest else None

    async def _stored_versions(self, aggregate_ids: list[bytes]) -> dict[bytes, int]:
        """The snapshot version of each aggregate (0 when it has none), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for aggregate_id in aggregate_ids:
            pipe.hget(self._key(aggregate_id.decode()), "version")
        versions = await pipe.execute()
        return {a: int(v or 0) for a, v in zip(aggregate_ids, versions, strict=True)}

    async def _rebuild(self, cls: type[A], aggregate_id: str, seen_token: bytes | None) -> A | None:
        """The aggregate from its events on Kafka; the snapshot follows unless someone moved it."""
        started = time.monotonic()
        topic = self._settings.kafka.topic(cls.topic_family)
        partition = await self._publisher.partition_of(topic, aggregate_id)
        envelopes = await read_aggregate_events(self._settings.kafka, partition, aggregate_id)
        aggregate = cls.replay(envelopes)
        if aggregate is not None:
            state = aggregate.snapshot()
            args: list[bytes | str | int] = [seen_token or b"", aggregate.version, uuid.uuid4().hex, state]
            await self._scripts["aggregate_settle"](keys=[self._key(aggregate_id)], args=args)
        log.info(
            "aggregate.rebuilt_from_log",
            aggregate_id=aggregate_id,
            events=len(envelopes),
            seconds=round(time.monotonic() - started, 3),
        )
        return aggregate


def _now_ms() -> int:
    return int(time.time() * 1000)


def _newest_versions(records: list[ConsumerRecord[bytes, bytes]]) -> dict[bytes, int]:
    """Each key's highest aggregate version among ``records``. A record that does not parse still
    asks for a snapshot of its key (version 1): the coverage promises nothing about it otherwise."""
    newest: dict[bytes, int] = {}
    for record in records:
        if record.key is None:
            continue
        try:
            version = int(orjson.loads(record.value)["aggregate_version"]) if record.value is not None else 1
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            version = 1
        newest[record.key] = max(version, newest.get(record.key, 0))
    return newest


@dataclass
class RebuiltSnapshots:
    """What ``rebuild_snapshots`` did to one topic."""

    topic: str
    events: int = 0
    written: int = 0
    """Snapshots written (missing, or older than the log); the others were as new already."""
    covered: dict[int, int] = field(default_factory=dict)
    """Partition → offset now covered."""
    uncovered: list[int] = field(default_factory=list)
    """Partitions left without coverage: they hold a record no aggregate of ``kinds`` can take."""


async def cover_empty_partitions(settings: Settings, redis: Redis, scripts: LuaScripts, family: str) -> list[int]:
    """Record coverage at offset 0 for each empty partition of the family's topic (its snapshots are
    trivially complete); returns the partitions that hold events and have no coverage."""
    topic = settings.kafka.topic(family)
    coverage = snapshot_coverage(topic)
    ends = await end_offsets(settings.kafka, topic, settings.kafka.topics[family].partitions)
    for partition, end in ends.items():
        if end == 0:
            await scripts["aggregate_coverage_establish"](keys=[coverage], args=[partition, 0])
    covered = await redis.hgetall(coverage)
    return sorted(p for p, end in ends.items() if end > 0 and str(p).encode() not in covered)


async def rebuild_snapshots(
    settings: Settings,
    redis: Redis,
    scripts: LuaScripts,
    family: str,
    kinds: Mapping[str, type[Aggregate]],
    partitions: list[int] | None = None,
) -> RebuiltSnapshots:
    """Every aggregate of the family's log folded from its events and its snapshot put back where
    it is missing or older (``lua/aggregate_restore.lua``), then each partition's coverage recorded
    at the offset read to. ``kinds`` maps a key's kind (``user`` in ``user-42``) to its aggregate;
    a partition holding any other record stays uncovered. Safe beside running commands: a snapshot
    a command has claimed or moved on is left alone."""
    topic = settings.kafka.topic(family)
    coverage = snapshot_coverage(topic)
    report = RebuiltSnapshots(topic)
    ends = await end_offsets(settings.kafka, topic, settings.kafka.topics[family].partitions)
    for partition in partitions if partitions is not None else sorted(ends):
        end = ends[partition]
        aggregates: dict[str, Aggregate] = {}
        foreign = False
        async for batch in partition_batches(settings.kafka, TopicPartition(topic, partition), end):
            report.events += len(batch)
            for record in batch:
                aggregate_id = record.key.decode() if record.key is not None else ""
                cls = kinds.get(aggregate_id.partition("-")[0])
                try:
                    if cls is None:
                        raise UndecodableEvent(f"no aggregate of kind {aggregate_id!r}")
                    folded = cls.replay([decode(record.value)], into=aggregates.get(aggregate_id))
                except (UndecodableEvent, ValueError) as exc:
                    foreign = True
                    log.warning("aggregate.rebuild_skipped_record", topic=topic, offset=record.offset, error=str(exc))
                    continue
                if folded is not None:
                    aggregates[aggregate_id] = folded
        report.written += await _restore(settings, scripts, redis, list(aggregates.values()))
        if foreign:
            report.uncovered.append(partition)
            continue
        await scripts["aggregate_coverage_establish"](keys=[coverage], args=[partition, end])
        report.covered[partition] = end
    log.info(
        "aggregate.snapshots_rebuilt",
        topic=topic,
        events=report.events,
        written=report.written,
        uncovered=report.uncovered,
    )
    return report


async def _restore(settings: Settings, scripts: LuaScripts, redis: Redis, aggregates: list[Aggregate]) -> int:
    written = 0
    for start in range(0, len(aggregates), RESTORE_BATCH):
        pipe = redis.pipeline(transaction=False)
        for aggregate in aggregates[start : start + RESTORE_BATCH]:
            await scripts["aggregate_restore"](
                keys=[aggregate_snapshot(aggregate.id, settings.kafka.topic_prefix)],
                args=[aggregate.version, uuid.uuid4().hex, aggregate.snapshot()],
                client=pipe,
            )
        written += sum(await pipe.execute())
    return written
