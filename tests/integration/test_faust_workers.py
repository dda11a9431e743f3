"""Faust workers as real processes on the real broker: tables, restarts, rebalances."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from events.envelope import EventEnvelope
from events.reference import AreaCreated, AreaLevel
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from tests.consumer_groups import advance_group_to_end, caught_up, rewind_group
from tests.integration.faust_probe import probe_key
from tests.processes import Child, eventually, start_worker, wait_until

pytestmark = pytest.mark.slow
WORKER_READY_S = 60
PROJECTED_S = 60


def _areas(first: int, count: int) -> list[EventEnvelope]:
    return [_area(first + i) for i in range(count)]


def _area(area_id: int) -> EventEnvelope:
    return EventEnvelope.wrap(
        AreaCreated(area_id=area_id, name=f"区域{area_id % 100}", level=AreaLevel.CITY), aggregate_version=1
    )


def _assigned_partitions(worker: Child, topic: str) -> set[int] | None:
    """The reference partitions a worker's latest assignment gave it, from its JSON log."""
    latest = None
    for line in worker.output().splitlines():
        if '"faust.partitions_assigned"' in line:
            latest = json.loads(line)
    if latest is None:
        return None
    return {int(tp.rsplit(":", 1)[1]) for tp in latest["partitions"] if tp.rsplit(":", 1)[0] == topic}


async def _published_partitions(publisher: EventPublisher, envelopes: list[EventEnvelope]) -> Counter[int]:
    return Counter(m.partition for m in await publisher.publish_many(envelopes))


async def test_table_survives_a_worker_restart(isolated, publisher, redis, tmp_path, area_code):
    key = probe_key(isolated.worker.projector_group)
    per_partition: Counter[int] = Counter()

    async def counted(n: int) -> bool:
        return int(await redis.llen(key)) >= n

    worker = Child(["tests.integration.faust_probe", "worker"], isolated, tmp_path / "probe-1.log")
    per_partition += await _published_partitions(publisher, _areas(area_code * 10, 6))
    await eventually(lambda: counted(6), WORKER_READY_S, "the probe to count 6 events")
    assert worker.stop() == 0

    per_partition += await _published_partitions(publisher, _areas(area_code * 10 + 6, 6))
    restarted = Child(["tests.integration.faust_probe", "worker"], isolated, tmp_path / "probe-2.log")
    try:
        await eventually(lambda: counted(12), WORKER_READY_S, "the restarted probe to count 12 events")
    finally:
        restarted.stop()

    entries = [e.decode() for e in await redis.lrange(key, 0, -1)]
    last_count = {int(p): int(c) for p, c in (e.split(":") for e in entries)}
    assert last_count == dict(per_partition)


async def _projected(pools: ShardPools, ids: list[int]) -> list[int]:
    counts = []
    for _, pool in pools:
        counts.append(await pool.fetchval("SELECT count(*) FROM area WHERE id = ANY($1::int[])", ids))
    return counts


async def test_two_workers_split_partitions_and_a_rebalance_loses_nothing(
    isolated, publisher, pools, tmp_path, area_code
):
    topic = isolated.kafka.topic("reference")
    partitions = isolated.kafka.topics["reference"].partitions
    first, second = start_worker(isolated, tmp_path / "w1.log"), start_worker(isolated, tmp_path / "w2.log")
    try:

        def split() -> bool:
            a, b = _assigned_partitions(first, topic), _assigned_partitions(second, topic)
            if not a or not b:
                return False
            return not (a & b) and (a | b) == set(range(partitions))

        await asyncio.to_thread(wait_until, split, WORKER_READY_S, "two workers to split the partitions")

        ids = list(range(area_code * 10, area_code * 10 + 60))
        await publisher.publish_many(_areas(ids[0], 30))
        # No goodbye: the group must notice, rebalance, and hand its partitions over. Killed after
        # asking to rejoin, it holds the rebalance up for the rebalance timeout (20 s), not longer.
        first.kill()
        await publisher.publish_many(_areas(ids[30], 30))

        async def all_projected() -> bool:
            return await _projected(pools, ids) == [60] * len(pools.databases)

        await eventually(all_projected, PROJECTED_S, "all 60 areas in every shard database")
        assert _assigned_partitions(second, topic) == set(range(partitions))
    finally:
        first.stop()
        second.stop()


async def _area_rows(pools: ShardPools, ids: list[int]) -> list[list[tuple[object, ...]]]:
    return [
        [
            tuple(r)
            for r in await pool.fetch(
                "SELECT id, name, updated_at FROM area WHERE id = ANY($1::int[]) ORDER BY id", ids
            )
        ]
        for _, pool in pools
    ]


async def test_a_worker_reading_the_log_again_changes_nothing(isolated, publisher, pools, tmp_path, area_code):
    topic, group = isolated.kafka.topic("reference"), isolated.worker.projector_group
    partitions = isolated.kafka.topics["reference"].partitions
    ids = list(range(area_code * 10, area_code * 10 + 20))
    await publisher.publish_many(_areas(ids[0], 20))

    async def projected() -> bool:
        return await _projected(pools, ids) == [20] * len(pools.databases)

    worker = start_worker(isolated, tmp_path / "first.log")
    try:
        await eventually(projected, PROJECTED_S, "the first pass")
    finally:
        worker.stop()
    before = await _area_rows(pools, ids)

    await rewind_group(isolated, group, topic, partitions)
    assert not await caught_up(isolated, group, topic, partitions)
    again = start_worker(isolated, tmp_path / "again.log")
    try:
        await eventually(lambda: caught_up(isolated, group, topic, partitions), PROJECTED_S, "the second pass")
    finally:
        again.stop()

    assert await _area_rows(pools, ids) == before
    assert '"projector.batch_failed"' not in again.output()


async def test_a_stopping_worker_finishes_the_batch_in_hand(isolated, publisher, pools, tmp_path, area_code):
    """Faust acks the batch in hand when an agent is cancelled (ADR 0003); on a stop it first waits
    for every taken event to be acked, so a batch held up in its transaction is still applied."""
    ids = list(range(area_code * 10, area_code * 10 + 11))
    worker = start_worker(isolated, tmp_path / "worker.log")
    try:
        await publisher.publish_many(_areas(ids[0], 1))
        await eventually(lambda: _all_there(pools, ids[:1]), PROJECTED_S, "the worker to project")
        (_, first_database), *_ = pools
        async with first_database.acquire() as blocker, blocker.transaction():
            # Hold the projector's next transaction in flight: it waits for this lock.
            await blocker.execute("LOCK TABLE projector_offset IN ACCESS EXCLUSIVE MODE")
            await publisher.publish_many(_areas(ids[1], 10))
            await eventually(lambda: _waiting_for_a_lock(first_database), PROJECTED_S, "a batch in flight")
            worker.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(3.0)  # the worker is stopping while its batch waits
        exit_code = await asyncio.to_thread(worker.proc.wait, 60)
    finally:
        worker.stop()

    assert exit_code == 0
    assert await _all_there(pools, ids), "the batch acked at stop was never applied"
    assert '"projector.batch_failed"' not in worker.output()


async def _all_there(pools: ShardPools, ids: list[int]) -> bool:
    return await _projected(pools, ids) == [len(ids)] * len(pools.databases)


async def _waiting_for_a_lock(pool) -> bool:
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%projector_offset%'"
    )
    return bool(waiting)


async def test_a_worker_reads_again_what_was_committed_but_never_applied(
    isolated, publisher, pools, tmp_path, area_code
):
    """The committed offsets ran past what the projectors applied (an agent cancelled with a batch
    in hand, ADR 0003): on assignment the worker commits the applied offsets back and reads on.
    The last partition had nothing applied before, so it is read from its beginning."""
    topic, group = isolated.kafka.topic("reference"), isolated.worker.projector_group
    partitions = list(range(isolated.kafka.topics["reference"].partitions))
    before = _area_ids_on(partitions[:-1], partitions, 10, first=area_code * 10)
    after = _area_ids_on(partitions, partitions, 10, first=max(before) + 1)
    first = start_worker(isolated, tmp_path / "first.log")
    try:
        await publisher.publish_many([_area(i) for i in before])
        await eventually(lambda: _all_there(pools, before), PROJECTED_S, "the first ten areas")
    finally:
        first.stop()
    await publisher.publish_many([_area(i) for i in after])
    await advance_group_to_end(isolated, group, topic, len(partitions))  # acked and committed, never applied

    again = start_worker(isolated, tmp_path / "again.log")
    try:
        await eventually(
            lambda: _all_there(pools, before + after), PROJECTED_S, "the areas committed but never applied"
        )
    finally:
        again.stop()

    rewound = [json.loads(line) for line in again.output().splitlines() if '"projector.rewound"' in line]
    assert rewound, "the worker never rewound"
    assert rewound[0]["partitions"][f"{topic}:{partitions[-1]}"][1] == 0
    assert '"projector.gap"' not in again.output()


def _area_ids_on(wanted: list[int], partitions: list[int], count: int, first: int) -> list[int]:
    """``count`` area ids from ``first`` on whose events land on the ``wanted`` partitions in
    turn (the publisher keys by aggregate with the default partitioner)."""
    partition_of = DefaultPartitioner()
    ids: list[int] = []
    candidate = first
    while len(ids) < count:
        while _partition(partition_of, candidate, partitions) != wanted[len(ids) % len(wanted)]:
            candidate += 1
        ids.append(candidate)
        candidate += 1
    return ids


def _partition(partition_of: DefaultPartitioner, area_id: int, partitions: list[int]) -> int:
    key = _area(area_id).aggregate_id.encode()
    return int(partition_of(key, partitions, partitions))


async def test_a_message_that_cannot_be_decoded_first_in_a_batch_leaves_no_gap(
    isolated, publisher, pools, tmp_path, area_code
):
    """The poison heads its partition, the areas after it follow in the same batch: it is
    dead-lettered and counted as handled in its place, and the areas land without a gap."""
    topic = isolated.kafka.topic("reference")
    partitions = list(range(isolated.kafka.topics["reference"].partitions))
    ids = _area_ids_on(partitions[:1], partitions, 3, first=area_code * 10)
    producer = AIOKafkaProducer(bootstrap_servers=isolated.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        poison = await producer.send_and_wait(topic, b"\xff not an event", key=b"area-x", partition=partitions[0])
    finally:
        await producer.stop()
    await publisher.publish_many([_area(i) for i in ids])  # on the poison's partition, before any worker reads

    worker = start_worker(isolated, tmp_path / "worker.log")
    try:
        await eventually(lambda: _all_there(pools, ids), PROJECTED_S, "the areas after the poison")
    finally:
        worker.stop()

    assert poison.offset == 0
    assert '"projector.gap"' not in worker.output()
