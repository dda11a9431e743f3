"""Consumer groups seen from the broker: committed offsets against end offsets, and what each
group dead-lettered. Needs no process of the group to run, nor Prometheus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from infra.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset; None when it committed none (it has read nothing there)."""
    start: int
    end: int

    @property
    def lag(self) -> int:
        # A partition never committed is unread from its first retained message.
        return self.end - (self.start if self.committed is None else max(self.committed, self.start))


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    partitions: list[PartitionLag]
    dead_letters: int | None
    """Messages in the group's dead-letter topic; None when the group has none."""

    @property
    def committed_total(self) -> int:
        return sum(p.committed or 0 for p in self.partitions)

    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.partitions})

    def of_topic(self, topic: str) -> list[PartitionLag]:
        return [p for p in self.partitions if p.topic == topic]


async def read_groups(settings: Settings, groups: Sequence[str]) -> list[GroupOffsets]:
    """Each group's offsets on every partition of the topics it committed to, and its dead letters."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = {group: await _committed(admin, group) for group in groups}
        dead_letter_topics = {group: settings.kafka.dead_letter_topic(group) for group in groups}
        wanted = {tp.topic for offsets in committed.values() for tp in offsets} | set(dead_letter_topics.values())
        # A topic that does not exist (a group without dead letters yet) is described with no partitions.
        described = await admin.describe_topics(sorted(wanted))
        partitions = sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"])
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    topics = {tp.topic for tp in partitions}

    def messages(topic: str) -> int:
        return sum(ends[tp] - starts[tp] for tp in partitions if tp.topic == topic)

    return [
        GroupOffsets(
            group,
            [
                PartitionLag(tp.topic, tp.partition, committed[group].get(tp), starts[tp], ends[tp])
                for tp in partitions
                if tp.topic in {c.topic for c in committed[group]}
            ],
            messages(dead_letter_topics[group]) if dead_letter_topics[group] in topics else None,
        )
        for group in groups
    ]


async def _committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    found = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
