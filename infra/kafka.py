"""Kafka plumbing: the idempotent event publisher and topic provisioning.

A command is accepted only once Kafka has acknowledged its event (acks=all,
idempotent producer), so a 202 never stands for an event that could be lost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, RecordMetadata, TopicPartition

from commands.ports import LogUnavailable
from events.envelope import EventEnvelope
from events.registry import event_class
from events.serialization import decode, encode
from infra.metrics import EVENTS_PUBLISHED
from infra.settings import KafkaSettings

log = structlog.get_logger(__name__)

CORRELATION_HEADER = "correlation-id"
EVENT_TYPE_HEADER = "event-type"


class EventPublisher:
    """Appends events to their topic family, keyed by aggregate, and waits for the acknowledgement."""

    def __init__(self, settings: KafkaSettings):
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.producer_linger_ms,
            request_timeout_ms=settings.request_timeout_ms,
            client_id="damai-publisher",
        )
        # The reader of partition tails (``records_since``): started on first use, kept open.
        self._reader: AIOKafkaConsumer | None = None
        self._reading = asyncio.Lock()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        async with self._reading:
            if self._reader is not None:
                await self._reader.stop()
                self._reader = None
        await self._producer.stop()

    def topic_for(self, envelope: EventEnvelope) -> str:
        return self._settings.topic(event_class(envelope.type).topic_family)

    async def publish(self, envelope: EventEnvelope) -> RecordMetadata:
        """Append one event and return once it is durable on the broker."""
        [metadata] = await self.publish_many([envelope])
        return metadata

    async def publish_many(self, envelopes: list[EventEnvelope]) -> list[RecordMetadata]:
        """Append a batch and return once every event is durable; results keep the input order.

        Events are handed to the producer one after another (cheap: it only buffers) and
        only then awaited together, so they share broker round trips. Awaiting each send
        as its own task instead was measured 15× slower; the delivery futures are awaited as
        they are, with no task of their own per event.
        """
        deliveries = [await self._enqueue(e) for e in envelopes]
        delivered: list[RecordMetadata] = list(await asyncio.gather(*deliveries))
        published = Counter((m.topic, e.type) for m, e in zip(delivered, envelopes, strict=True))
        for (topic, event_type), n in published.items():
            EVENTS_PUBLISHED.labels(topic=topic, type=event_type).inc(n)
        return delivered

    async def append(self, envelopes: list[EventEnvelope], timeout_s: float) -> None:
        """``publish_many`` for a command: ``LogUnavailable`` unless Kafka acknowledges within ``timeout_s``.

        After a timeout the producer may still deliver the events (it retries until its request
        timeout): a caller must treat them as perhaps appended (ADR 0006).
        """
        try:
            await asyncio.wait_for(self.publish_many(envelopes), timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise LogUnavailable("the event log did not acknowledge the command; retry") from exc

    async def _enqueue(self, envelope: EventEnvelope) -> asyncio.Future[RecordMetadata]:
        delivery: asyncio.Future[RecordMetadata] = await self._producer.send(
            self.topic_for(envelope),
            value=encode(envelope),
            key=envelope.aggregate_id.encode(),
            headers=[
                (CORRELATION_HEADER, str(envelope.correlation_id).encode()),
                (EVENT_TYPE_HEADER, envelope.type.encode()),
            ],
        )
        return delivery

    async def partition_of(self, topic: str, aggregate_id: str) -> TopicPartition:
        """The partition that holds an aggregate's events: where its key is published (the
        producer's default partitioner, murmur2 as in Kafka's own clients)."""
        partitions = sorted(await self._producer.partitions_for(topic))
        key = aggregate_id.encode()
        return TopicPartition(topic, DefaultPartitioner()(key, partitions, partitions))

    async def records_since(
        self, partition: TopicPartition, offset: int
    ) -> tuple[list[ConsumerRecord[bytes, bytes]], int]:
        """The partition's records from ``offset`` to its end as it is now, and that end.

        For short reads near a partition's end (the aggregate store's check of what was appended
        since its snapshots were last checked, ADR 0007). One consumer per publisher, kept open: a
        new consumer's first offsets request costs about 100 ms here. Reads take turns on it.
        ``LogUnavailable`` when the brokers do not answer in time.
        """
        try:
            async with self._reading:
                reader = await self._started_reader()
                end = (await reader.end_offsets([partition]))[partition]
                if end <= offset:
                    return [], end
                reader.assign([partition])
                reader.seek(partition, offset)
                records: list[ConsumerRecord[bytes, bytes]] = []
                while await reader.position(partition) < end:
                    fetched = await reader.getmany(
                        partition, timeout_ms=self._settings.request_timeout_ms, max_records=LOG_READ_BATCH
                    )
                    records += [r for r in fetched.get(partition, []) if r.offset < end]
                # No partition stays assigned: an assigned one is fetched from in the background.
                reader.unsubscribe()
                return records, end
        except KafkaError as exc:
            raise LogUnavailable("the event log could not be read in time; retry") from exc

    async def _started_reader(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=self._settings.request_timeout_ms,
                client_id="damai-tail-reader",
            )
            await reader.start()
            self._reader = reader
        return self._reader

    async def check_reachable(self) -> None:
        """Raise if the brokers cannot answer a metadata request now."""
        await self._producer.client.fetch_all_metadata()


# Records per fetch while reading one aggregate's events back from its partition.
LOG_READ_BATCH = 2000


async def read_aggregate_events(
    settings: KafkaSettings, partition: TopicPartition, aggregate_id: str
) -> list[EventEnvelope]:
    """Every event of one aggregate, in log order: its partition (``EventPublisher.partition_of``)
    read from the start, keeping its key.

    Reading a whole partition is the slow path of a load: it runs only when the command side
    holds no snapshot of the aggregate (ADR 0006). ``LogUnavailable`` when the brokers do not
    answer in time (the command may be retried).
    """
    try:
        return await _read_aggregate_events(settings, partition, aggregate_id)
    except KafkaError as exc:
        raise LogUnavailable("the event log could not be read in time; retry") from exc


async def _read_aggregate_events(
    settings: KafkaSettings, partition: TopicPartition, aggregate_id: str
) -> list[EventEnvelope]:
    key = aggregate_id.encode()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.request_timeout_ms,
        client_id="damai-aggregate-reader",
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        # An explicit seek: seek_to_beginning right after assign() lost a race with the initial
        # offset reset here and started at the end.
        consumer.seek(partition, (await consumer.beginning_offsets([partition]))[partition])
        envelopes = []
        while await consumer.position(partition) < end:
            fetched = await consumer.getmany(
                partition, timeout_ms=settings.request_timeout_ms, max_records=LOG_READ_BATCH
            )
            envelopes += [decode(m.value) for m in fetched.get(partition, []) if m.key == key]
        return envelopes
    finally:
        await consumer.stop()


async def partition_batches(
    settings: KafkaSettings, partition: TopicPartition, end: int
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """A partition from its start up to offset ``end``, in batches (for rebuilding every snapshot
    of a log, ADR 0007). ``LogUnavailable`` when the brokers do not answer in time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.request_timeout_ms,
        client_id="damai-log-reader",
    )
    try:
        await consumer.start()
        consumer.assign([partition])
        consumer.seek(partition, (await consumer.beginning_offsets([partition]))[partition])
        while await consumer.position(partition) < end:
            fetched = await consumer.getmany(
                partition, timeout_ms=settings.request_timeout_ms, max_records=LOG_READ_BATCH
            )
            yield [r for r in fetched.get(partition, []) if r.offset < end]
    except KafkaError as exc:
        raise LogUnavailable("the event log could not be read in time; retry") from exc
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end offset now (0 for an empty partition)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=settings.request_timeout_ms, client_id="damai-offsets"
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    configs: dict[str, str]


def topic_plan(settings: KafkaSettings, consumer_groups: list[str]) -> list[TopicPlan]:
    """Every topic the system needs: one per event family plus a dead-letter topic per group."""
    plans = [
        TopicPlan(settings.topic(family), spec.partitions, {"retention.ms": str(spec.retention_ms)})
        for family, spec in settings.topics.items()
    ]
    plans += [
        TopicPlan(settings.dead_letter_topic(group), settings.dead_letter_partitions, {"retention.ms": "-1"})
        for group in consumer_groups
    ]
    return plans


TOPIC_ALREADY_EXISTS = 36
# Topic metadata reaches every broker a moment after creation; describe waits this long for it.
METADATA_SETTLE_ATTEMPTS = 20
METADATA_SETTLE_PAUSE_S = 0.1


async def ensure_topics(settings: KafkaSettings, consumer_groups: list[str]) -> list[str]:
    """Create the topics that are missing; refuse a partition count that differs from settings."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=settings.request_timeout_ms)
    await admin.start()
    try:
        plans = topic_plan(settings, consumer_groups)
        existing = set(await admin.list_topics())
        missing = [p for p in plans if p.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(p.name, p.partitions, settings.replication_factor, topic_configs=p.configs) for p in missing]
            )
            for name, code, *message in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: checked below
                    raise RuntimeError(f"could not create topic {name}: error {code} {message}")
        await _check_partition_counts(admin, plans)
        log.info("kafka.topics_ensured", created=created, total=len(plans))
        return created
    finally:
        await admin.close()


async def _check_partition_counts(admin: AIOKafkaAdminClient, plans: list[TopicPlan]) -> None:
    wanted = {p.name: p.partitions for p in plans}
    for _ in range(METADATA_SETTLE_ATTEMPTS):
        described = await admin.describe_topics(list(wanted))
        actual = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        if set(actual) == set(wanted):
            break
        await asyncio.sleep(METADATA_SETTLE_PAUSE_S)
    wrong = {name: (actual.get(name), n) for name, n in wanted.items() if actual.get(name) != n}
    if wrong:
        # Changing the partition count would move keys between partitions and break
        # the one-writer-per-key rule; it needs a deliberate migration, not a silent fix.
        raise RuntimeError(f"topics with a partition count other than configured (actual, wanted): {wrong}")
