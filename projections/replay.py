"""Copying one namespace's event log into another, record for record: the first step of a replay.

A replay runs a namespace's processors over another namespace's log to show that the log alone
makes the same state (DESIGN.md, "The log is the truth"). Each record of a topic family is copied
to the same partition of the target's family with its key, value, headers and timestamp
unchanged, so every aggregate's events keep their order and every event keeps its id. Only what
the source holds when the copy starts is copied; a target family that already holds records is
refused, so a copy run twice cannot duplicate the log. With ``until``, only the events that occurred
before that moment are copied (by the envelope's ``occurred_at``): the log as it stood then, for a
replay "as of" a moment.

The order of a replay matters, as it did live: the catalogue first (its projections are what the
allocator decides against), then the order requests (the allocator decides each and stores the
decision in Redis), then the order topic (the lifecycle ends the holds the decisions made). docs/
operations.md ("Replaying a namespace's log") states the steps; ``damai events replay``
(``cli/namespace_replay.py``) runs them.

The program keys of Redis (``{p:<id>}:*``) carry the program's id, not the namespace: a target on
the source's Redis database would share them, so a replay's target uses a Redis database of its
own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import KafkaSettings

CATALOGUE_FAMILIES = ("reference", "program")
"""What the processors of the purchase path decide against: copied, and projected, first."""
ORDER_FAMILIES = ("order-requests", "order")

COPY_FETCH_MS = 500
COPY_MAX_RECORDS = 2_000


class ReplayRefused(Exception):
    """The copy cannot be made as asked (a target family that holds records, partitions that differ)."""


async def copy_families(
    source: KafkaSettings, target: KafkaSettings, families: Sequence[str], until: datetime | None = None
) -> dict[str, int]:
    """Copy each family's records, as they stand now, from ``source``'s topics to ``target``'s (with
    ``until``, only the events that occurred before it); return how many records each family copied."""
    consumer = AIOKafkaConsumer(bootstrap_servers=source.bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(
        bootstrap_servers=target.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=target.producer_linger_ms,
        client_id="damai-replay",
    )
    await consumer.start()
    await producer.start()
    try:
        copied = {}
        for family in families:
            partitions = await _partitions(source, source.topic(family))
            if partitions != await _partitions(target, target.topic(family)):
                raise ReplayRefused(f"{family}: the source and the target have different partitions")
            copied[family] = await _copy_topic(
                consumer, producer, source.topic(family), target.topic(family), partitions, until
            )
        return copied
    finally:
        await producer.stop()
        await consumer.stop()


async def _partitions(settings: KafkaSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        raise ReplayRefused(f"{topic}: no such topic (error {described['error_code']})")
    return sorted(p["partition"] for p in described["partitions"])


def occurred_before(value: bytes | None, until: datetime) -> bool:
    """Whether the event in this record occurred before ``until`` (its envelope's ``occurred_at``).

    Not the record's timestamp: a copy keeps the original's, but an event is appended a moment
    after it occurred, and the moment an analyst asks about is the domain's. A record that is no
    envelope (a tombstone) is left out.
    """
    if value is None:
        return False
    return datetime.fromisoformat(orjson.loads(value)["occurred_at"]) < until


async def _copy_topic(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    source: str,
    target: str,
    partitions: list[int],
    until: datetime | None,
) -> int:
    targets = [TopicPartition(target, p) for p in partitions]
    held = {tp.partition: end for tp, end in (await consumer.end_offsets(targets)).items() if end}
    if held:
        raise ReplayRefused(f"{target} already holds records (end offsets by partition: {held})")
    sources = [TopicPartition(source, p) for p in partitions]
    ends = await consumer.end_offsets(sources)
    left = {tp: end for tp, end in ends.items() if end > 0}
    if not left:  # an empty topic: nothing to copy (and nothing to seek in)
        return 0
    consumer.assign(list(left))
    await consumer.seek_to_beginning(*left)
    copied = 0
    while left:
        fetched = await consumer.getmany(*left, timeout_ms=COPY_FETCH_MS, max_records=COPY_MAX_RECORDS)
        deliveries = []
        for tp, records in fetched.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                if until is not None and not occurred_before(record.value, until):
                    continue
                deliveries.append(
                    await producer.send(
                        target,
                        value=record.value,
                        key=record.key,
                        partition=tp.partition,
                        timestamp_ms=record.timestamp,
                        headers=list(record.headers),
                    )
                )
        await asyncio.gather(*deliveries)
        copied += len(deliveries)
        for tp in list(left):
            if await consumer.position(tp) >= ends[tp]:
                del left[tp]
    consumer.unsubscribe()
    return copied
