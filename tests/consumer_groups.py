"""Kafka consumer groups seen from a test: rewinding one, and knowing when it has caught up."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from infra.settings import Settings
from projections.rewind import committed_offsets


async def rewind_group(settings: Settings, group: str, topic: str, partitions: int) -> None:
    """Commit offset 0 for every partition: the group will read the whole topic again."""
    await _commit(settings, group, topic, partitions, to_end=False)


async def advance_group_to_end(settings: Settings, group: str, topic: str, partitions: int) -> None:
    """Commit every partition's end offset, as if the group had processed everything."""
    await _commit(settings, group, topic, partitions, to_end=True)


async def _commit(settings: Settings, group: str, topic: str, partitions: int, *, to_end: bool) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        offsets = await consumer.end_offsets(tps) if to_end else dict.fromkeys(tps, 0)
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def caught_up(settings: Settings, group: str, topic: str, partitions: int) -> bool:
    """The group has committed every partition up to its end: everything was processed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        end = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    committed = await committed_offsets(settings.kafka.bootstrap, group, {TP(topic, p) for p in range(partitions)})
    # An empty partition has nothing to process (and gets no committed offset).
    return all(offset == 0 or committed.get(TP(tp.topic, tp.partition), -1) >= offset for tp, offset in end.items())
