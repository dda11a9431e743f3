"""A load with no snapshot: new when the partition's snapshot coverage proves it, from the log
otherwise (ADR 0007). Real Redis and Kafka, each test in a namespace of its own."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from aggregates.ownership import MobileOwnership
from cli.provision import cover_snapshots, snapshotted_families
from events.envelope import EventEnvelope
from infra.aggregate_store import AggregateStore
from infra.kafka import EventPublisher, end_offsets
from infra.redis import LuaScripts
from infra.redis_keys import aggregate_snapshot, snapshot_coverage
from infra.settings import Settings

USER_ID = 4_100_000_000_001


@pytest_asyncio.fixture
async def store(isolated: Settings, redis: Redis, publisher: EventPublisher) -> AsyncIterator[AggregateStore]:
    yield AggregateStore(isolated, redis, LuaScripts(redis), publisher)


async def mobiles_in_one_partition(publisher: EventPublisher, settings: Settings, count: int) -> list[str]:
    """Blind indexes whose ownerships share the user topic's partition 0."""
    topic, blinds = settings.kafka.topic("user"), list[str]()
    while len(blinds) < count:
        blind = secrets.token_hex(32)
        if (await publisher.partition_of(topic, MobileOwnership.create_id(blind))).partition == 0:
            blinds.append(blind)
    return blinds


async def claim(store: AggregateStore, blind: str, user_id: int = USER_ID) -> None:
    assert await store.load(MobileOwnership, MobileOwnership.create_id(blind)) is None
    await store.save(MobileOwnership.first_claim(blind, user_id), uuid.uuid4())


async def append_behind_the_store(publisher: EventPublisher, blind: str, user_id: int) -> None:
    """A claim appended to the log without the store: it leaves no snapshot."""
    decided = MobileOwnership.first_claim(blind, user_id).outbox()
    envelopes = [EventEnvelope.wrap(d.event, aggregate_version=d.version, occurred_at=d.occurred_at) for d in decided]
    await publisher.append(envelopes, 10)


async def coverage(redis: Redis, settings: Settings, partition: int = 0) -> int | None:
    covered = await redis.hget(snapshot_coverage(settings.kafka.topic("user")), str(partition))
    return None if covered is None else int(covered)


async def user_partition_end(settings: Settings, partition: int = 0) -> int:
    return (await end_offsets(settings.kafka, settings.kafka.topic("user"), settings.kafka.topics["user"].partitions))[
        partition
    ]


async def forget_snapshot(redis: Redis, settings: Settings, blind: str) -> None:
    await redis.delete(aggregate_snapshot(MobileOwnership.create_id(blind), settings.kafka.topic_prefix))


async def test_every_partition_of_the_stores_logs_is_covered_when_provisioned_empty(isolated: Settings, redis: Redis):
    for family in snapshotted_families():
        covered = await redis.hgetall(snapshot_coverage(isolated.kafka.topic(family)))
        assert covered == {str(p).encode(): b"0" for p in range(isolated.kafka.topics[family].partitions)}


async def test_a_missing_snapshot_under_the_coverage_is_a_new_aggregate_without_reading_below_it(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    (blind,) = await mobiles_in_one_partition(publisher, isolated, 1)
    await append_behind_the_store(publisher, blind, USER_ID)
    end = await user_partition_end(isolated)
    # Claimed as covered past the record: the store must take the coverage at its word.
    await redis.hset(snapshot_coverage(isolated.kafka.topic("user")), "0", end)

    loaded = await store.load(MobileOwnership, MobileOwnership.create_id(blind))

    assert loaded is None


async def test_a_missing_snapshot_of_an_uncovered_partition_is_loaded_from_the_log(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    (blind,) = await mobiles_in_one_partition(publisher, isolated, 1)
    await append_behind_the_store(publisher, blind, USER_ID)
    await redis.hdel(snapshot_coverage(isolated.kafka.topic("user")), "0")

    loaded = await store.load(MobileOwnership, MobileOwnership.create_id(blind))

    assert loaded is not None and loaded.holder == USER_ID


async def test_a_first_load_moves_the_coverage_over_the_events_it_checked(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    first, second, third = await mobiles_in_one_partition(publisher, isolated, 3)
    await claim(store, first)
    await claim(store, second)
    end = await user_partition_end(isolated)
    # The second claim's own first load checked the first claim's event.
    assert end == 2 and await coverage(redis, isolated) == 1

    assert await store.load(MobileOwnership, MobileOwnership.create_id(third)) is None

    assert await coverage(redis, isolated) == end


async def test_a_snapshot_lost_after_its_append_is_loaded_from_the_log_and_the_coverage_dropped(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    # Redis lost the claim's snapshot (a crash between AOF fsyncs) after Kafka acknowledged the
    # claim; no load has checked that part of the log yet, so the coverage is still below it.
    (blind,) = await mobiles_in_one_partition(publisher, isolated, 1)
    await claim(store, blind)
    await forget_snapshot(redis, isolated, blind)

    loaded = await store.load(MobileOwnership, MobileOwnership.create_id(blind))

    assert loaded is not None and loaded.holder == USER_ID
    assert await coverage(redis, isolated) is None


async def test_another_aggregates_lost_snapshot_drops_the_coverage_and_the_first_load_reads_the_log(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    lost, new = await mobiles_in_one_partition(publisher, isolated, 2)
    await claim(store, lost)
    await forget_snapshot(redis, isolated, lost)

    assert await store.load(MobileOwnership, MobileOwnership.create_id(new)) is None
    assert await coverage(redis, isolated) is None
    reloaded = await store.load(MobileOwnership, MobileOwnership.create_id(lost))
    assert reloaded is not None and reloaded.holder == USER_ID


async def test_a_claim_appended_behind_the_stores_back_is_found_when_the_coverage_is_checked(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    (blind,) = await mobiles_in_one_partition(publisher, isolated, 1)
    await append_behind_the_store(publisher, blind, USER_ID)

    loaded = await store.load(MobileOwnership, MobileOwnership.create_id(blind))

    assert loaded is not None and loaded.holder == USER_ID
    assert await coverage(redis, isolated) is None


async def test_rebuilding_the_snapshots_of_a_redis_that_lost_them_restores_them_and_the_coverage(
    isolated: Settings, redis: Redis, publisher: EventPublisher, store: AggregateStore
):
    blinds = await mobiles_in_one_partition(publisher, isolated, 3)
    for i, blind in enumerate(blinds):
        await claim(store, blind, USER_ID + i)
    # Redis restarted without its AOF: every snapshot and the coverage are gone.
    for blind in blinds:
        await forget_snapshot(redis, isolated, blind)
    await redis.delete(*(snapshot_coverage(isolated.kafka.topic(f)) for f in snapshotted_families()))

    reports = await cover_snapshots(isolated)

    user_report = next(r for r in reports if r.topic == isolated.kafka.topic("user"))
    assert (user_report.written, user_report.uncovered) == (3, [])
    assert await coverage(redis, isolated) == await user_partition_end(isolated)
    for i, blind in enumerate(blinds):
        key = aggregate_snapshot(MobileOwnership.create_id(blind), isolated.kafka.topic_prefix)
        assert await redis.hget(key, "version") == b"1"
        loaded = await store.load(MobileOwnership, MobileOwnership.create_id(blind))
        assert loaded is not None and loaded.holder == USER_ID + i


async def test_a_rebuild_leaves_a_partition_uncovered_when_it_holds_a_record_of_no_known_aggregate(
    isolated: Settings, redis: Redis
):
    topic = isolated.kafka.topic("user")
    producer = AIOKafkaProducer(bootstrap_servers=isolated.kafka.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\xff not an event", key=b"stranger-1", partition=0)
    finally:
        await producer.stop()
    await redis.hdel(snapshot_coverage(topic), "0")

    reports = await cover_snapshots(isolated)

    assert next(r for r in reports if r.topic == topic).uncovered == [0]
    assert await coverage(redis, isolated) is None
